use super::{render::signed_bytes, *};

fn pkg(name: &str, version: &str, build: Option<&str>) -> (String, Package) {
    (
        envship_spec::python_dists::normalize(name),
        Package {
            name: name.into(),
            version: version.into(),
            build: build.map(String::from),
        },
    )
}

#[test]
fn packages_added_removed_and_changed_by_version_or_build() {
    let old = BTreeMap::from([
        pkg("numpy", "1.26.4", Some("py311_0")),
        pkg("zlib", "1.2.13", Some("h0")),
        pkg("gone", "1", Some("0")),
    ]);
    let new = BTreeMap::from([
        pkg("numpy", "1.26.4", Some("py311_1")),
        pkg("zlib", "1.2.13", Some("h0")),
        pkg("fresh", "2", Some("0")),
    ]);
    let c = PackageChanges::between(old, new);
    assert_eq!(
        c.added.iter().map(|p| &p.name).collect::<Vec<_>>(),
        ["fresh"]
    );
    assert_eq!(
        c.removed.iter().map(|p| &p.name).collect::<Vec<_>>(),
        ["gone"]
    );
    assert_eq!(c.changed.len(), 1);
    assert_eq!(c.changed[0].old_build.as_deref(), Some("py311_0"));
    assert_eq!(c.changed[0].new_build.as_deref(), Some("py311_1"));
}

#[test]
fn sizes_read_as_people_write_them() {
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(3 << 20), "3.0 MiB");
    assert_eq!(signed_bytes(10, 4), "-6 B");
    assert_eq!(signed_bytes(0, 2048), "+2.0 KiB");
}
