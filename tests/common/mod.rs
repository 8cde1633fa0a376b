//! Helpers shared by the end-to-end tests: generated MNIST-format data, the binary, results.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

use ffw_data::idx::{write_images, write_labels, Images};
use rand::{Rng, SeedableRng};

/// Digit-like MNIST files: class d draws a bar at a class-specific column, plus sparse noise.
pub fn write_mnist(dir: &Path, n_train: usize, n_test: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for (images, labels, n) in [
        (
            "train-images-idx3-ubyte.gz",
            "train-labels-idx1-ubyte.gz",
            n_train,
        ),
        (
            "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz",
            n_test,
        ),
    ] {
        let mut pixels = vec![0u8; n * 784];
        let mut ys = Vec::with_capacity(n);
        for i in 0..n {
            let d = (i % 10) as u8;
            for r in 4..24 {
                pixels[i * 784 + r * 28 + 3 + 2 * d as usize] = 255;
            }
            for _ in 0..20 {
                pixels[i * 784 + rng.gen_range(0..784)] = rng.gen_range(1..=255);
            }
            ys.push(d);
        }
        write_images(
            &dir.join(images),
            &Images {
                n,
                rows: 28,
                cols: 28,
                pixels,
            },
        )
        .unwrap();
        write_labels(&dir.join(labels), &ys).unwrap();
    }
}

/// CIFAR-10's binary distribution (`data_batch_1..5.bin`, `test_batch.bin`) with
/// `per_batch` train images per batch and `n_test` test images: class k has a bright bar at
/// rows 3k..3k+2 over noise, the classes interleaved.
pub fn write_cifar10(dir: &Path, per_batch: usize, n_test: usize) {
    use ffw_data::cifar10::{to_binary, Cifar10Split, IMAGE_LEN};
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut batch = |n: usize| {
        let mut split = Cifar10Split::default();
        for i in 0..n {
            let class = i % 10;
            split.labels.push(class as u8);
            split.pixels.extend((0..IMAGE_LEN).map(|p| {
                let row = (p % 1024) / 32;
                if (3 * class..3 * class + 2).contains(&row) {
                    230
                } else {
                    rng.gen_range(0..120)
                }
            }));
        }
        to_binary(&split)
    };
    for k in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{k}.bin")), batch(per_batch)).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), batch(n_test)).unwrap();
}

/// The `ffw` binary under test, quiet unless something goes wrong.
pub fn ffw() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ffw"));
    c.env("RUST_LOG", "warn");
    c
}

pub fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A JSON file with its wall-clock fields removed (the only ones allowed to differ).
pub fn read_stripped(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| k != "secs" && k != "wall_secs");
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

/// The journal's events (read as the sweep reads it: by lines of bytes, skipping bad ones).
pub fn events(out: &Path) -> Vec<serde_json::Value> {
    std::fs::read(out.join("journal.jsonl"))
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

pub fn count(out: &Path, id: &str, kind: &str) -> usize {
    events(out)
        .iter()
        .filter(|e| e["job"] == id && e["event"] == kind)
        .count()
}
