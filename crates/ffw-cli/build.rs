//! Records the candle version from Cargo.lock so results say which kernels produced them.
//! (Cargo gives a build script no dependency's version; `built`/`cargo-lock` would read the
//! same file but pull in a URL parser with its Unicode tables to do it.)
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
