//! A token that cannot leak through `Debug`, `Display` or error messages.

use std::fmt;

/// An API token. Its `Debug` and `Display` print `***`; the only way to read it is
/// [`Secret::expose`], which the HTTP client calls when it sets the `Authorization` header.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wrap a token.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Read a token from the environment variable `name`; `None` when unset or empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(Self)
    }

    /// The token itself. Callers must not log or format it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Replace every occurrence of the token in `text` by `***`: server messages may echo the
    /// request back, and those end up in error messages.
    pub fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("ghp_supersecret123");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{:#?}", Some(&s)), "Some(\n    Secret(***),\n)");
        assert_eq!(s.scrub("bad token ghp_supersecret123!"), "bad token ***!");
        assert_eq!(s.expose(), "ghp_supersecret123");
    }
}
