//! The page's sections, each a function of the [`crate::Evidence`] returning its HTML.

pub mod audit;
pub mod diff;
pub mod gates;
pub mod packages;
pub mod summary;
pub mod test;

/// The test's verdict: the caller's, else the manifest's `test.passed`.
pub fn test_passed(e: &crate::Evidence<'_>) -> Option<bool> {
    e.test_passed.or_else(|| {
        e.manifest
            .test
            .as_ref()
            .and_then(|t| t.get("passed"))
            .and_then(serde_json::Value::as_bool)
    })
}
