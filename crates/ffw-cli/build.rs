//! Records the candle version from Cargo.lock so results say which kernels produced them.
//! Cargo gives a build script no dependency's version. `built` records one only with its
//! `cargo-lock` feature, which reads this same file but adds 27 crates to the build (checked
//! with `cargo tree` for built 0.8: `url`, `idna` and the ICU4X normalisation tables among
//! them); `vergen` records no dependency versions at all. So: `toml`, already a dependency.
#[derive(serde::Deserialize)]
struct Lock {
    package: Vec<Package>,
}

#[derive(serde::Deserialize)]
struct Package {
    name: String,
    version: String,
}

fn main() {
    println!("cargo:rerun-if-changed=../../Cargo.lock");
    let text =
        std::fs::read_to_string("../../Cargo.lock").expect("Cargo.lock beside the workspace");
    let lock: Lock = toml::from_str(&text).expect("Cargo.lock is TOML");
    let candle = lock
        .package
        .iter()
        .find(|p| p.name == "candle-core")
        .expect("candle-core is a dependency");
    println!("cargo:rustc-env=FFW_CANDLE_VERSION={}", candle.version);
}
