//! GitHub build provenance: a Sigstore bundle (`ARCHIVE.sigstore.json`, as
//! `actions/attest-build-provenance` makes it) verified offline against a trusted root.
