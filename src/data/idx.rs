//! MNIST digits in the IDX format, and the bundled set.
//!
//! IDX files start with a big-endian magic number (`0x00000803` for u8
//! images, `0x00000801` for u8 labels), then one big-endian u32 per
//! dimension, then the raw bytes. The files may be gzip-compressed. Pixels
//! become f32 in [0, 1] (`v / 255`), laid out `[N, 1, 28, 28]`.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// The 10,000 bundled digits, gzip-compressed IDX (see `assets/mnist/README.md`).
const BUNDLED_IMAGES: &[u8] = include_bytes!("../../assets/mnist/mnist-10k-images-idx3-ubyte.gz");
const BUNDLED_LABELS: &[u8] = include_bytes!("../../assets/mnist/mnist-10k-labels-idx1-ubyte.gz");

/// Number of bundled digits used for training; the rest are held out.
pub const TRAIN_SPLIT: usize = 9000;

/// A set of labelled greyscale digits.
#[derive(Clone, Debug)]
pub struct Digits {
    /// Pixels in [0, 1], `[n, 1, rows, cols]` row-major.
    pub images: Vec<f32>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub rows: usize,
    /// Image width.
    pub cols: usize,
}

impl Digits {
    /// The 10,000 digits compiled into the crate.
    pub fn bundled() -> Result<Digits> {
        Digits::from_idx(
            BUNDLED_IMAGES,
            BUNDLED_LABELS,
            Path::new("<bundled digits>"),
        )
    }

    /// Reads an image file and a label file in IDX format (gzip or plain).
    pub fn load(images: &Path, labels: &Path) -> Result<Digits> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|source| Error::Io {
                path: p.to_path_buf(),
                source,
            })
        };
        let digits = Digits::from_idx(&read(images)?, &read(labels)?, images)?;
        Ok(digits)
    }

    /// Parses IDX bytes; `path` names the source in errors.
    pub fn from_idx(images: &[u8], labels: &[u8], path: &Path) -> Result<Digits> {
        let bad = |reason: String| Error::Data {
            path: path.to_path_buf(),
            reason,
        };
        let images = gunzip(images).map_err(|e| bad(format!("image file: {e}")))?;
        let labels = gunzip(labels).map_err(|e| bad(format!("label file: {e}")))?;

        let (idims, ipix) =
            parse_idx(&images, 0x0803, 3).map_err(|e| bad(format!("image file: {e}")))?;
        let (ldims, lab) =
            parse_idx(&labels, 0x0801, 1).map_err(|e| bad(format!("label file: {e}")))?;
        if idims[0] != ldims[0] {
            return Err(bad(format!("{} images but {} labels", idims[0], ldims[0])));
        }
        Ok(Digits {
            images: ipix.iter().map(|&v| f32::from(v) / 255.0).collect(),
            labels: lab.to_vec(),
            rows: idims[1],
            cols: idims[2],
        })
    }

    /// Number of digits.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.rows * self.cols
    }

    /// Digits `range` as a new set.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Digits {
        let start = range.start.min(self.len());
        let end = range.end.min(self.len()).max(start);
        let px = self.image_len();
        Digits {
            images: self.images[start * px..end * px].to_vec(),
            labels: self.labels[start..end].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }

    /// The training part of the bundled split (the first [`TRAIN_SPLIT`]).
    pub fn train(&self) -> Digits {
        self.slice(0..TRAIN_SPLIT)
    }

    /// The held-out part of the bundled split (everything after [`TRAIN_SPLIT`]).
    pub fn held_out(&self) -> Digits {
        self.slice(TRAIN_SPLIT..self.len())
    }

    /// The labels as u32, as the GPU loss kernel takes them.
    pub fn labels_u32(&self) -> Vec<u32> {
        self.labels.iter().map(|&l| u32::from(l)).collect()
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let px = self.image_len();
        &self.images[i * px..(i + 1) * px]
    }
}

fn gunzip(bytes: &[u8]) -> std::result::Result<Vec<u8>, String> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| format!("gzip: {e}"))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// The dimensions and data of an IDX file of u8 values with `rank` dimensions.
fn parse_idx(
    bytes: &[u8],
    magic: u32,
    rank: usize,
) -> std::result::Result<(Vec<usize>, &[u8]), String> {
    let word = |i: usize| -> std::result::Result<u32, String> {
        bytes
            .get(i * 4..i * 4 + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| format!("truncated header ({} bytes)", bytes.len()))
    };
    let found = word(0)?;
    if found != magic {
        return Err(format!(
            "magic number {found:#010x}, expected {magic:#010x}"
        ));
    }
    let dims = (1..=rank)
        .map(|i| word(i).map(|d| d as usize))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let header = 4 * (rank + 1);
    let len = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let data = &bytes[header..];
    if data.len() != len {
        return Err(format!(
            "dimensions {dims:?} need {len} bytes of data, file has {}",
            data.len()
        ));
    }
    Ok((dims, data))
}
