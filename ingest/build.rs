//! Embeds every `datasets/recipes/*.toml` into the library, so `njp recipes list` works from any
//! directory. The recipes themselves stay plain files, reviewed like code.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    // The checkout being built, read when the script runs: `env!` would bake in the checkout
    // the script was compiled in, and Cargo reuses a compiled build script across checkouts
    // that share a target directory (a deleted clone then left a binary with no recipes).
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("Cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../datasets/recipes");
    println!("cargo:rerun-if-changed={}", dir.display());
    // A missing or empty recipe directory is a broken checkout, not "no recipes": stop here
    // instead of building a binary that knows none.
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the recipes in {}: {e}", dir.display()))
        .map(|e| {
            e.unwrap_or_else(|e| panic!("cannot read the recipes in {}: {e}", dir.display()))
                .path()
        })
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    assert!(!names.is_empty(), "no recipe (*.toml) in {}", dir.display());
    names.sort();
    let mut out = String::from(
        "/// `(file stem, TOML text)` of every bundled recipe, sorted by name.\npub static BUNDLED: &[(&str, &str)] = &[\n",
    );
    for p in &names {
        println!("cargo:rerun-if-changed={}", p.display());
        let stem = p.file_stem().unwrap().to_string_lossy();
        let abs = p.canonicalize().unwrap();
        writeln!(
            out,
            "    ({stem:?}, include_str!({:?})),",
            abs.display().to_string()
        )
        .unwrap();
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("recipes.rs");
    std::fs::write(dest, out).unwrap();
}
