//! Image files in and out.
//!
//! An image becomes `[C, H, W]` f32 in [0, 1]: one channel for greyscale
//! models (colour images are converted to luma), three for RGB models. Sizes
//! are never changed silently: an image of the wrong size is refused with both
//! sizes named, since resampling would change what the model sees.

use std::path::Path;

use crate::error::{Error, Result};

/// Reads an image file as `[C, H, W]` values in [0, 1] for a model whose
/// per-sample input shape is `shape`.
pub fn load_image(path: &Path, shape: [usize; 3]) -> Result<Vec<f32>> {
    let [c, h, w] = shape;
    let img = image::open(path).map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })?;
    if (img.height() as usize, img.width() as usize) != (h, w) {
        return Err(Error::Data {
            path: path.to_path_buf(),
            reason: format!(
                "image is {}x{} (width x height), the model takes {w}x{h}",
                img.width(),
                img.height()
            ),
        });
    }
    match c {
        1 => Ok(img.to_luma8().pixels().map(|p| f32::from(p.0[0]) / 255.0).collect()),
        3 => {
            // Interleaved RGB to planar [3, H, W].
            let rgb = img.to_rgb8();
            let mut out = vec![0.0; 3 * h * w];
            for (i, p) in rgb.pixels().enumerate() {
                for ch in 0..3 {
                    out[ch * h * w + i] = f32::from(p.0[ch]) / 255.0;
                }
            }
            Ok(out)
        }
        _ => Err(Error::Data {
            path: path.to_path_buf(),
            reason: format!("the model takes {c} channels; only 1 (greyscale) and 3 (RGB) can be read from image files"),
        }),
    }
}

/// Converts `[C, H, W]` values in [0, 1] to an 8-bit image (1 or 3 channels).
pub fn to_rgb_image(data: &[f32], shape: [usize; 3]) -> image::RgbImage {
    let [c, h, w] = shape;
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        if c >= 3 {
            image::Rgb([
                byte(data[i]),
                byte(data[h * w + i]),
                byte(data[2 * h * w + i]),
            ])
        } else {
            let v = byte(data[i]);
            image::Rgb([v, v, v])
        }
    })
}

/// Writes `[C, H, W]` values in [0, 1] as a PNG (greyscale for one channel).
pub fn save_png(path: &Path, data: &[f32], shape: [usize; 3]) -> Result<()> {
    let [c, h, w] = shape;
    let result = if c == 1 {
        let bytes = data
            .iter()
            .map(|v| (v.clamp(0.0, 1.0) * 255.0).round() as u8)
            .collect();
        image::GrayImage::from_raw(w as u32, h as u32, bytes)
            .expect("length is h * w by construction")
            .save(path)
    } else {
        to_rgb_image(data, shape).save(path)
    };
    result.map_err(|source| Error::Image {
        path: path.to_path_buf(),
        source,
    })
}
