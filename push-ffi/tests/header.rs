//! The committed C header must be what cbindgen makes of the current source.
//!
//! C callers (and PHP's FFI::cdef) read `include/push_ffi.h`, not the Rust
//! source, so a stale header is a broken ABI. This test regenerates it and
//! compares; run it with `UPDATE_HEADER=1` to rewrite the committed copy.

use std::path::Path;

#[test]
fn committed_header_matches_the_source() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_path = crate_dir.join("../cbindgen.toml");
    let config = cbindgen::Config::from_file(&config_path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", config_path.display()));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen cannot parse push-ffi")
        .write(&mut generated);

    let header_path = crate_dir.join("include/push_ffi.h");
    if std::env::var_os("UPDATE_HEADER").is_some() {
        std::fs::write(&header_path, &generated).expect("writing the header");
        return;
    }
    let committed = std::fs::read(&header_path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is stale: run `UPDATE_HEADER=1 cargo test -p push-ffi --test header` and commit it",
        header_path.display()
    );
}
