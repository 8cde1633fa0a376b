//! The widely shared pre-built Corrupted CIFAR-10 (DFA's release, which FFW's code reads):
//! `<0.5pct|1pct|2pct|5pct>/{align,conflict}/<class>/<idx>_<label>_<bias>.png` for the train
//! set at each ρ and `test/<class>/<idx>_<label>_<bias>.png` for the balanced test set, 32×32
//! RGB PNGs, in the folder given or its `cifar10c/`. The `valid/` folders are not used: FFW's
//! unbiased sets come from `test/`.
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::cifar10::{Cifar10Split, IMAGE_LEN, N_CLASSES, SIDE};
use crate::corrupted_cifar10::Corrupted;
use crate::error::{DataError, Result};

/// ρ and the folder of its train set.
pub const FOLDERS: [(f64, &str); 4] = [
    (0.995, "0.5pct"),
    (0.99, "1pct"),
    (0.98, "2pct"),
    (0.95, "5pct"),
];

pub fn percent_folder(rho: f64) -> Option<&'static str> {
    FOLDERS
        .iter()
        .find(|(r, _)| (r - rho).abs() < 1e-9)
        .map(|(_, f)| *f)
}

/// `dir`, or its `cifar10c/` (as the release's archive unpacks).
fn release_root(dir: &Path) -> PathBuf {
    let inner = dir.join("cifar10c");
    if inner.is_dir() {
        inner
    } else {
        dir.to_path_buf()
    }
}

fn train_folder(root: &Path, rho: f64) -> Result<PathBuf> {
    percent_folder(rho)
        .map(|f| release_root(root).join(f))
        .ok_or_else(|| DataError::Invalid(format!("no pre-built folder for ρ = {rho}")))
}

/// The folders whose modification times stand for the set's content in the cache key.
pub fn source_folders(root: &Path, rho: f64) -> Vec<PathBuf> {
    let root = release_root(root);
    let train = root.join(percent_folder(rho).unwrap_or_default());
    vec![
        train.join("align"),
        train.join("conflict"),
        root.join("test"),
    ]
}

/// One image's file, its class folder, and the labels in its name.
struct Entry {
    path: PathBuf,
    label: u8,
    bias: u8,
}

/// Every `<class>/<idx>_<label>_<bias>.png` under `dir`, sorted by class then index; the
/// label in the name must be the folder's class.
fn list(dir: &Path) -> Result<Vec<Entry>> {
    let read = |d: &Path| std::fs::read_dir(d).map_err(|e| DataError::io(d, e));
    if !dir.is_dir() {
        return Err(DataError::Missing {
            dir: dir.parent().unwrap_or(dir).to_path_buf(),
            what: format!(
                "{} is missing: expected the pre-built Corrupted CIFAR-10 folders \
                 (<0.5pct|1pct|2pct|5pct>/align|conflict/<class>/ and test/<class>/)",
                dir.display()
            ),
        });
    }
    let mut entries = Vec::new();
    for class_dir in read(dir)? {
        let class_dir = class_dir.map_err(|e| DataError::io(dir, e))?.path();
        if !class_dir.is_dir() {
            continue;
        }
        let class = class_dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u8>().ok())
            .filter(|&c| (c as usize) < N_CLASSES)
            .ok_or_else(|| DataError::format(&class_dir, "not a class folder 0..9"))?;
        for file in read(&class_dir)? {
            let path = file.map_err(|e| DataError::io(&class_dir, e))?.path();
            let (idx, label, bias) = parse_name(&path)?;
            if label != class {
                return Err(DataError::format(
                    &path,
                    format!("label {label} in the name, but the folder is class {class}"),
                ));
            }
            entries.push((class, idx, Entry { path, label, bias }));
        }
    }
    entries.sort_by_key(|(class, idx, _)| (*class, *idx));
    Ok(entries.into_iter().map(|(_, _, e)| e).collect())
}

/// `<idx>_<label>_<bias>.png`: the index, label and bias (the last two fields, as the
/// loaders of the release read them).
fn parse_name(path: &Path) -> Result<(u64, u8, u8)> {
    let bad = || {
        DataError::format(
            path,
            "not a pre-built image name <idx>_<label>_<bias>.png with label and bias 0..9",
        )
    };
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".png"))
        .ok_or_else(bad)?;
    let fields: Vec<&str> = stem.split('_').collect();
    let [.., idx, label, bias] = fields[..] else {
        return Err(bad());
    };
    let class = |s: &str| s.parse::<u8>().ok().filter(|&v| (v as usize) < N_CLASSES);
    match (idx.parse::<u64>(), class(label), class(bias)) {
        (Ok(i), Some(l), Some(b)) => Ok((i, l, b)),
        _ => Err(bad()),
    }
}

/// Decodes every entry (in parallel) into planar 32×32 RGB.
fn decode(entries: Vec<Entry>) -> Result<Corrupted> {
    let images: Vec<Vec<u8>> = entries
        .par_iter()
        .map(|e| {
            let bytes = std::fs::read(&e.path).map_err(|err| DataError::io(&e.path, err))?;
            let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
                .map_err(|err| DataError::format(&e.path, format!("not a PNG image: {err}")))?
                .to_rgb8();
            if img.dimensions() != (SIDE as u32, SIDE as u32) {
                return Err(DataError::format(
                    &e.path,
                    format!("{:?} pixels, not 32×32", img.dimensions()),
                ));
            }
            let rgb = img.into_raw();
            Ok((0..3)
                .flat_map(|c| (0..SIDE * SIDE).map(move |p| (c, p)))
                .map(|(c, p)| rgb[3 * p + c])
                .collect())
        })
        .collect::<Result<_>>()?;
    let mut pixels = Vec::with_capacity(images.len() * IMAGE_LEN);
    images.iter().for_each(|i| pixels.extend_from_slice(i));
    Ok(Corrupted {
        images: Cifar10Split {
            pixels,
            labels: entries.iter().map(|e| e.label).collect(),
        },
        corruption: entries.iter().map(|e| e.bias).collect(),
    })
}

/// The train set at `rho`: `align/` then `conflict/`, whose images must be bias-aligned and
/// bias-conflicting respectively.
pub fn read_train(root: &Path, rho: f64) -> Result<Corrupted> {
    let folder = train_folder(root, rho)?;
    let mut all = Vec::new();
    for (sub, aligned) in [("align", true), ("conflict", false)] {
        for e in list(&folder.join(sub))? {
            if (e.label == e.bias) != aligned {
                return Err(DataError::format(
                    &e.path,
                    format!(
                        "in {sub}/ but its label is {} and its bias {}",
                        e.label, e.bias
                    ),
                ));
            }
            all.push(e);
        }
    }
    decode(all)
}

/// The balanced test set.
pub fn read_test(root: &Path) -> Result<Corrupted> {
    decode(list(&release_root(root).join("test"))?)
}

/// Checks that the folders exist and name their images correctly (without decoding them).
pub fn check(root: &Path, rho: f64) -> Result<()> {
    let folder = train_folder(root, rho)?;
    for dir in [
        folder.join("align"),
        folder.join("conflict"),
        release_root(root).join("test"),
    ] {
        if list(&dir)?.is_empty() {
            return Err(DataError::format(&dir, "holds no images"));
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes `<dir>/<class>/<idx>_<label>_<bias>.png`, pixels from the index.
    fn write(dir: &Path, idx: usize, label: u8, bias: u8) {
        let class_dir = dir.join(label.to_string());
        std::fs::create_dir_all(&class_dir).unwrap();
        let rgb: Vec<u8> = (0..IMAGE_LEN)
            .map(|p| ((idx * 13 + p) % 256) as u8)
            .collect();
        image::save_buffer(
            class_dir.join(format!("{idx}_{label}_{bias}.png")),
            &rgb,
            32,
            32,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    }

    /// A tiny release: 2pct with 3 aligned and 1 conflicting image per class, a test folder
    /// with every corruption once per class.
    pub(crate) fn write_release(root: &Path) {
        let mut idx = 0;
        for class in 0..10u8 {
            for _ in 0..3 {
                write(&root.join("2pct/align"), idx, class, class);
                idx += 1;
            }
            write(&root.join("2pct/conflict"), idx, class, (class + 1) % 10);
            idx += 1;
            for bias in 0..10u8 {
                write(&root.join("test"), idx, class, bias);
                idx += 1;
            }
        }
    }

    #[test]
    fn the_release_folders_read_to_their_labels_and_pixels() {
        let tmp = tempfile::tempdir().unwrap();
        // As the archive unpacks: the folders in cifar10c/, found from its parent too.
        write_release(&tmp.path().join("cifar10c"));
        check(tmp.path(), 0.98).unwrap();
        let train = read_train(tmp.path(), 0.98).unwrap();
        assert_eq!(train.images.len(), 40);
        let aligned = (0..40)
            .filter(|&i| train.images.labels[i] == train.corruption[i])
            .count();
        assert_eq!(aligned, 30);
        // The first image: index 0, planar: red of pixel 1 is the interleaved byte 3.
        assert_eq!(train.images.image(0)[1], 3);
        assert_eq!(train.images.image(0)[SIDE * SIDE], 1);
        let test = read_test(tmp.path()).unwrap();
        assert_eq!(test.images.len(), 100);
        for class in 0..10u8 {
            for bias in 0..10u8 {
                let n = (0..100)
                    .filter(|&i| test.images.labels[i] == class && test.corruption[i] == bias)
                    .count();
                assert_eq!(n, 1);
            }
        }
        let err = check(tmp.path(), 0.95).unwrap_err().to_string();
        assert!(err.contains("5pct"), "{err}");
    }

    #[test]
    fn misnamed_or_misfiled_images_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        write_release(tmp.path());
        write(&tmp.path().join("2pct/align"), 999, 4, 7);
        let err = read_train(tmp.path(), 0.98).unwrap_err().to_string();
        assert!(
            err.contains("999_4_7.png") && err.contains("align/"),
            "{err}"
        );
        std::fs::remove_file(tmp.path().join("2pct/align/4/999_4_7.png")).unwrap();
        std::fs::write(tmp.path().join("test/3/5_3_x.png"), b"").unwrap();
        let err = read_test(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("5_3_x.png"), "{err}");
        std::fs::rename(
            tmp.path().join("test/3/5_3_x.png"),
            tmp.path().join("test/3/5_3_2.png"),
        )
        .unwrap();
        let err = read_test(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("5_3_2.png") && err.contains("PNG"), "{err}");
    }
}
