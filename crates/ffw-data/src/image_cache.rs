//! An optional one-time cache of resized images: every image of a dataset decoded and resized
//! once (in parallel) into one file of RGB u8 rows, then memory-mapped, so later runs skip the
//! JPEG decoding and the resize (normalisation and flips still happen per batch). The file's
//! name holds the input size and a hash of the file list, so another size or another set of
//! images builds another cache; images changed in place are not noticed (delete the file).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;

use crate::dataset::{Inputs, Splits};
use crate::error::{DataError, Result};
use crate::image_files::{decode_resized, ImageFiles};
use crate::seeds::fnv1a;

/// Images decoded per parallel step while the cache is built (bounds the memory it takes).
const BUILD_CHUNK: usize = 1024;

/// The resized images, one row of `3·side²` bytes (HWC) per file of the list it was built from.
#[derive(Debug)]
pub struct ImageCache {
    pub path: PathBuf,
    side: usize,
    map: memmap2::Mmap,
}

impl PartialEq for ImageCache {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl ImageCache {
    /// The cache of `paths` at `size`×`size` in `dir`, built first if absent or of the wrong
    /// length (an interrupted build leaves no file: it is written atomically).
    pub fn open_or_build(dir: &Path, paths: &[PathBuf], size: u32) -> Result<ImageCache> {
        let mut key = Vec::new();
        for p in paths {
            key.extend_from_slice(p.to_string_lossy().as_bytes());
            key.push(b'\n');
        }
        let path = dir.join(format!("images-{size}-{:016x}.u8", fnv1a(&key)));
        let row = 3 * size as usize * size as usize;
        let want = (paths.len() * row) as u64;
        let fits = std::fs::metadata(&path).is_ok_and(|m| m.len() == want);
        if !fits {
            std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
            build(&path, paths, size)?;
        }
        let file = std::fs::File::open(&path).map_err(|e| DataError::io(&path, e))?;
        // SAFETY: the file is only ever replaced by an atomic rename, never written in place,
        // so the mapping stays valid while this process holds it.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| DataError::io(&path, e))?;
        if map.len() as u64 != want {
            return Err(DataError::format(
                &path,
                format!("{} bytes, expected {want}", map.len()),
            ));
        }
        Ok(ImageCache {
            path,
            side: size as usize,
            map,
        })
    }

    /// Row `i`: the `i`-th file's resized RGB bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        let row = 3 * self.side * self.side;
        &self.map[i * row..(i + 1) * row]
    }
}

/// Decodes every file in parallel chunks into the cache file at `path`, atomically.
fn build(path: &Path, paths: &[PathBuf], size: u32) -> Result<()> {
    let mut failed = None;
    crate::atomic::write_with(path, |f| {
        for chunk in paths.chunks(BUILD_CHUNK) {
            let rows: Vec<Vec<u8>> = match chunk
                .par_iter()
                .map(|p| decode_resized(p, size))
                .collect::<Result<_>>()
            {
                Ok(rows) => rows,
                Err(e) => {
                    failed = Some(e);
                    return Err(std::io::Error::other("an image failed to decode"));
                }
            };
            for r in rows {
                f.write_all(&r)?;
            }
        }
        Ok(())
    })
    .map_err(|e| failed.take().unwrap_or_else(|| DataError::io(path, e)))
}

/// The splits with their image files read from one cache in `dir`, built over all their files
/// (in-memory splits are left as they are).
pub fn cache_splits(splits: Splits, dir: &Path) -> Result<Splits> {
    let mut sets = [
        splits.train,
        splits.unbiased_train,
        splits.unbiased_val,
        splits.test,
    ];
    let files: Vec<ImageFiles> = sets
        .iter()
        .filter_map(|d| match &d.x {
            Inputs::Files(f) => Some(ImageFiles::clone(f)),
            Inputs::Memory(_) => None,
        })
        .collect();
    let mut cached_files = cached(files, dir)?.into_iter();
    for d in &mut sets {
        if let Inputs::Files(_) = d.x {
            d.x = Inputs::Files(Arc::new(cached_files.next().expect("one per set")));
        }
    }
    let [train, unbiased_train, unbiased_val, test] = sets;
    Ok(Splits {
        train,
        unbiased_train,
        unbiased_val,
        test,
    })
}

/// The image sets reading from one cache in `dir` built over all their files, in order.
pub fn cached(sets: Vec<ImageFiles>, dir: &Path) -> Result<Vec<ImageFiles>> {
    let Some(size) = sets.first().map(|s| s.prep.size) else {
        return Ok(sets);
    };
    let all: Vec<PathBuf> = sets.iter().flat_map(|s| s.paths.iter().cloned()).collect();
    let cache = Arc::new(ImageCache::open_or_build(dir, &all, size)?);
    let mut start = 0;
    Ok(sets
        .into_iter()
        .map(|mut s| {
            s.cached = Some((cache.clone(), (start..start + s.len()).collect()));
            start += s.len();
            s
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_files::Preparation;

    #[test]
    fn a_cached_set_loads_what_decoding_loads_and_is_built_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..7)
            .map(|k| {
                let p = dir.path().join(format!("{k}.png"));
                image::RgbImage::from_fn(13, 9, |x, y| {
                    image::Rgb([k * 30, x as u8 * 19, y as u8 * 25])
                })
                .save(&p)
                .unwrap();
                p
            })
            .collect();
        let set = |paths: &[PathBuf]| ImageFiles {
            paths: paths.to_vec(),
            prep: Preparation::imagenet(6),
            flip: true,
            cached: None,
        };
        let plain = [set(&paths[..4]), set(&paths[4..])];
        let cache_dir = dir.path().join("cache");
        let cached_sets = cached(plain.to_vec(), &cache_dir).unwrap();
        for (a, b) in plain.iter().zip(&cached_sets) {
            let idx: Vec<usize> = (0..a.len()).rev().collect();
            assert_eq!(
                a.load(&idx, Some(5)).unwrap(),
                b.load(&idx, Some(5)).unwrap()
            );
        }
        let files: Vec<_> = std::fs::read_dir(&cache_dir).unwrap().collect();
        assert_eq!(files.len(), 1);
        // A second open reads the cache: the images themselves are no longer needed.
        for p in &paths {
            std::fs::remove_file(p).unwrap();
        }
        let again = cached(plain.to_vec(), &cache_dir).unwrap();
        assert_eq!(
            again[1].load(&[2, 0], None).unwrap(),
            cached_sets[1].load(&[2, 0], None).unwrap()
        );
        // Another size is another cache, built from the (now missing) files: the error names one.
        let other = ImageFiles {
            prep: Preparation::imagenet(5),
            ..set(&paths)
        };
        let msg = cached(vec![other], &cache_dir).unwrap_err().to_string();
        assert!(msg.contains("0.png"), "{msg}");
    }
}
