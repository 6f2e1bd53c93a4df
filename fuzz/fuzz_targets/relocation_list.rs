//! Relocation-list parsing: no panic; what parses keeps the path rule and round-trips.
#![no_main]
use envship_pack::{archive_path::ArchivePath, RelocationList};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = std::path::Path::new("relocate.txt");
    if let Ok(list) = RelocationList::parse(text, path) {
        for e in &list.entries {
            let p = ArchivePath::parse(&e.path).expect("parsed paths keep the rule");
            assert_eq!(p.map(|p| p.into_bytes()).as_deref(), Some(&e.path[..]));
        }
        let again = RelocationList::parse(&list.to_text(), path).expect("round trip parses");
        assert_eq!(again, list);
    }
});
