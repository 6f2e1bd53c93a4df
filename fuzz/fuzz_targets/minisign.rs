//! minisign public keys, secret keys and signatures (`FILE.minisig`): any text gives a key, a
//! verdict or an error, never a panic. The first byte picks what the rest is (`0` public key, `1`
//! signature, `2` secret key, taken mod 3); signatures are checked in memory against a fixed key
//! and file (fuzz/seeds/minisign, made with Debian's minisign 0.11), so that mutations of a valid
//! signature reach the signature checks themselves.
#![no_main]
use std::{path::Path, sync::OnceLock};

use envship_trust::minisig::{verify_signature, SigningKey, TrustedKey};
use libfuzzer_sys::fuzz_target;

const PUBLIC: &str = include_str!("../seeds/minisign/facility.pub");
const SIGNED: &[u8] = include_bytes!("../seeds/minisign/data.txt");

fn key() -> &'static TrustedKey {
    static KEY: OnceLock<TrustedKey> = OnceLock::new();
    KEY.get_or_init(|| TrustedKey::parse(PUBLIC, "facility.pub").expect("the seed key"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&what, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match what % 3 {
        0 => {
            if let Ok(k) = TrustedKey::parse(text, "fuzz.pub") {
                let again = TrustedKey::parse(&k.to_base64(), "again").expect("a key's own line");
                assert_eq!(again.id, k.id);
            }
        }
        1 => {
            let key = key();
            let r = verify_signature(
                Path::new("data.txt"),
                Path::new("data.txt.minisig"),
                text,
                std::slice::from_ref(key),
                || Ok(std::io::Cursor::new(SIGNED)),
            );
            match r {
                Ok(v) => assert_eq!(v.key_id, key.id),
                Err(e) => drop(e.to_string()),
            }
        }
        _ => {
            if let Err(e) = SigningKey::parse(text, "fuzz.key") {
                drop(e.to_string());
            }
        }
    }
});
