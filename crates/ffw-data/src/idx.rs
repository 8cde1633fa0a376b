//! IDX files (the MNIST distribution format): read raw or gzipped, write atomically.
//!
//! Gzip is detected from the magic bytes `1f 8b`, not from the file name, because
//! mirrors ship both spellings with and without `.gz` whatever the content.

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned bytes with three dimensions (images).
const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with one dimension (labels).
const LABELS_MAGIC: u32 = 0x0000_0801;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A stack of greyscale images, row-major, one byte per pixel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    pub n: usize,
    pub rows: usize,
    pub cols: usize,
    /// `n * rows * cols` bytes, image after image.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Number of pixels in one image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`. Panics if `i >= n`, like slice indexing.
    pub fn image(&self, i: usize) -> &[u8] {
        let len = self.image_len();
        &self.pixels[i * len..(i + 1) * len]
    }
}

/// Reads an IDX images file (magic 0x00000803), raw or gzipped.
pub fn read_images(path: &Path) -> Result<Images> {
    let bytes = read_decoded(path)?;
    let dims = parse_header(path, &bytes, IMAGES_MAGIC, 3)?;
    let (n, rows, cols) = (dims[0], dims[1], dims[2]);
    let pixels = payload(path, &bytes, &dims)?;
    Ok(Images {
        n,
        rows,
        cols,
        pixels,
    })
}

/// Reads an IDX labels file (magic 0x00000801), raw or gzipped.
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = read_decoded(path)?;
    let dims = parse_header(path, &bytes, LABELS_MAGIC, 1)?;
    payload(path, &bytes, &dims)
}

/// The number of items (images, or labels) an IDX file declares, from its header alone.
pub fn count(path: &Path, images: bool) -> Result<usize> {
    let (magic, n_dims) = if images {
        (IMAGES_MAGIC, 3)
    } else {
        (LABELS_MAGIC, 1)
    };
    let header_len = 4 * (1 + n_dims) as u64;
    let mut reader =
        std::io::BufReader::new(fs::File::open(path).map_err(|e| DataError::io(path, e))?);
    let gz = std::io::BufRead::fill_buf(&mut reader)
        .map_err(|e| DataError::io(path, e))?
        .starts_with(&GZIP_MAGIC);
    let mut head = Vec::new();
    let read = if gz {
        MultiGzDecoder::new(reader)
            .take(header_len)
            .read_to_end(&mut head)
    } else {
        reader.take(header_len).read_to_end(&mut head)
    };
    read.map_err(|e| DataError::io(path, e))?;
    Ok(parse_header(path, &head, magic, n_dims)?[0])
}

/// Writes `images` as an IDX file; gzipped when `path` ends in `.gz`.
pub fn write_images(path: &Path, images: &Images) -> Result<()> {
    let expected = images
        .n
        .checked_mul(images.rows)
        .and_then(|v| v.checked_mul(images.cols));
    if expected != Some(images.pixels.len()) {
        return Err(DataError::Invalid(format!(
            "cannot write {}: {} pixel bytes for {} images of {}x{}",
            path.display(),
            images.pixels.len(),
            images.n,
            images.rows,
            images.cols
        )));
    }
    let header = header(path, IMAGES_MAGIC, &[images.n, images.rows, images.cols])?;
    write_atomic(path, &header, &images.pixels)
}

/// Writes `labels` as an IDX file; gzipped when `path` ends in `.gz`.
pub fn write_labels(path: &Path, labels: &[u8]) -> Result<()> {
    let header = header(path, LABELS_MAGIC, &[labels.len()])?;
    write_atomic(path, &header, labels)
}

/// The file's bytes, gunzipped when they start with the gzip magic.
fn read_decoded(path: &Path) -> Result<Vec<u8>> {
    let raw = fs::read(path).map_err(|e| DataError::io(path, e))?;
    if !raw.starts_with(&GZIP_MAGIC) {
        return Ok(raw);
    }
    let mut out = Vec::new();
    MultiGzDecoder::new(raw.as_slice())
        .read_to_end(&mut out)
        .map_err(|e| DataError::format(path, format!("corrupt or truncated gzip stream: {e}")))?;
    Ok(out)
}

/// Checks the magic number and returns the `n_dims` dimensions that follow it.
fn parse_header(path: &Path, bytes: &[u8], magic: u32, n_dims: usize) -> Result<Vec<usize>> {
    // The magic comes first so that a short file of the wrong kind says so.
    let header_len = 4 * (1 + n_dims);
    let truncated = |len: usize| {
        DataError::format(
            path,
            format!(
                "truncated header: {} bytes, expected at least {len}",
                bytes.len()
            ),
        )
    };
    let word = |i: usize| {
        u32::from_be_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    };
    if bytes.len() < 4 {
        return Err(truncated(header_len));
    }
    let found = word(0);
    if found != magic {
        let hint = match found {
            IMAGES_MAGIC => " (this is an images file)",
            LABELS_MAGIC => " (this is a labels file)",
            _ => "",
        };
        return Err(DataError::format(
            path,
            format!("bad magic 0x{found:08x}, expected 0x{magic:08x}{hint}"),
        ));
    }
    if bytes.len() < header_len {
        return Err(truncated(header_len));
    }
    Ok((1..=n_dims).map(|i| word(i) as usize).collect())
}

/// The bytes after the header, which must number exactly the product of `dims`.
fn payload(path: &Path, bytes: &[u8], dims: &[usize]) -> Result<Vec<u8>> {
    let header_len = 4 * (1 + dims.len());
    let actual = bytes.len() - header_len;
    // u128 so that a hostile header cannot overflow the product.
    let expected: u128 = dims.iter().map(|&d| d as u128).product();
    if expected != actual as u128 {
        let shape = dims
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("x");
        let what = if (actual as u128) < expected {
            "truncated"
        } else {
            "trailing bytes"
        };
        return Err(DataError::format(
            path,
            format!(
                "{what}: header announces {shape} = {expected} data bytes, file holds {actual}"
            ),
        ));
    }
    Ok(bytes[header_len..].to_vec())
}

fn header(path: &Path, magic: u32, dims: &[usize]) -> Result<Vec<u8>> {
    let mut out = magic.to_be_bytes().to_vec();
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| {
            DataError::Invalid(format!(
                "cannot write {}: dimension {d} does not fit the IDX format's 32 bits",
                path.display()
            ))
        })?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    Ok(out)
}

/// Writes the file through [`crate::atomic`], gzipped when `path` ends in `.gz`.
fn write_atomic(path: &Path, header: &[u8], body: &[u8]) -> Result<()> {
    let gz = path.extension().is_some_and(|e| e == "gz");
    crate::atomic::write_with(path, |file| {
        if gz {
            let mut enc = GzEncoder::new(file, Compression::default());
            enc.write_all(header)?;
            enc.write_all(body)?;
            enc.finish().map(drop)
        } else {
            let mut file = std::io::BufWriter::new(file);
            file.write_all(header)?;
            file.write_all(body)?;
            file.flush()
        }
    })
    .map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_images() -> Images {
        Images {
            n: 3,
            rows: 2,
            cols: 4,
            pixels: (0..24u8).map(|v| v * 10).collect(),
        }
    }

    #[test]
    fn images_and_labels_round_trip_raw_and_gz() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["imgs-idx3-ubyte", "imgs-idx3-ubyte.gz"] {
            let p = dir.path().join(name);
            write_images(&p, &sample_images()).unwrap();
            assert_eq!(read_images(&p).unwrap(), sample_images());
        }
        for name in ["labs-idx1-ubyte", "labs-idx1-ubyte.gz"] {
            let p = dir.path().join(name);
            write_labels(&p, &[3, 1, 4, 1, 5]).unwrap();
            assert_eq!(read_labels(&p).unwrap(), vec![3, 1, 4, 1, 5]);
        }
        // No temporary file left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
    }

    #[test]
    fn gz_is_detected_by_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("a.gz");
        write_images(&gz, &sample_images()).unwrap();
        let raw_bytes = fs::read(&gz).unwrap();
        assert_eq!(&raw_bytes[..2], &GZIP_MAGIC);
        // Gzipped content under a name without `.gz`, raw content under a `.gz` name.
        let misnamed = dir.path().join("plain");
        fs::write(&misnamed, &raw_bytes).unwrap();
        assert_eq!(read_images(&misnamed).unwrap(), sample_images());
        let raw = dir.path().join("b");
        write_images(&raw, &sample_images()).unwrap();
        let fake_gz = dir.path().join("c.gz");
        fs::copy(&raw, &fake_gz).unwrap();
        assert_eq!(read_images(&fake_gz).unwrap(), sample_images());
    }

    #[test]
    fn truncated_file_is_a_format_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("train-images-idx3-ubyte");
        write_images(&p, &sample_images()).unwrap();
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("train-images-idx3-ubyte"), "{msg}");
        assert!(
            msg.contains("truncated") && msg.contains("24") && msg.contains("19"),
            "{msg}"
        );

        // Header itself cut short.
        fs::write(&p, &bytes[..10]).unwrap();
        let msg = read_images(&p).unwrap_err().to_string();
        assert!(msg.contains("truncated header"), "{msg}");
    }

    #[test]
    fn truncated_gzip_stream_is_a_format_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.gz");
        write_labels(&p, &vec![7u8; 5000]).unwrap();
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let err = read_labels(&p).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        assert!(err.to_string().contains("labels.gz"), "{err}");
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels");
        write_labels(&p, &[1, 2, 3]).unwrap();
        let mut bytes = fs::read(&p).unwrap();
        bytes.push(9);
        fs::write(&p, &bytes).unwrap();
        let msg = read_labels(&p).unwrap_err().to_string();
        assert!(msg.contains("trailing"), "{msg}");
    }

    #[test]
    fn bad_magic_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels-as-images");
        write_labels(&p, &[1, 2, 3]).unwrap();
        let err = read_images(&p).unwrap_err();
        assert!(matches!(err, DataError::Format { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("bad magic 0x00000801") && msg.contains("labels file"),
            "{msg}"
        );
        let junk = dir.path().join("junk");
        fs::write(&junk, b"hello world, not an idx file").unwrap();
        assert!(read_labels(&junk)
            .unwrap_err()
            .to_string()
            .contains("bad magic"));
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let err = read_labels(Path::new("/nonexistent/ffw/labels")).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/ffw/labels"));
    }

    #[test]
    fn inconsistent_images_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let mut imgs = sample_images();
        imgs.pixels.pop();
        let p = dir.path().join("x");
        assert!(matches!(
            write_images(&p, &imgs),
            Err(DataError::Invalid(_))
        ));
        assert!(!p.exists());
    }
}
