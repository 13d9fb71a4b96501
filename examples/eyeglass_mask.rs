//! Draws the bundled eyeglass-frame mask, `assets/masks/eyeglasses-28.png`.
//!
//! `cargo run --example eyeglass_mask -- assets/masks/eyeglasses-28.png`
//!
//! A 28 x 28 greyscale PNG, white (255) where a masked attack may change
//! pixels and black elsewhere: two elliptical rims, a bridge between them and
//! the two temples running to the image's edges, at the height where an MNIST
//! digit's upper loop sits. The shape is defined by the constants below; the
//! committed file is this program's output.

use std::path::PathBuf;

/// Image side in pixels.
const SIZE: u32 = 28;
/// Centres of the two rims (x, y), in pixel units with pixel centres at +0.5.
const RIMS: [(f32, f32); 2] = [(8.5, 11.5), (19.5, 11.5)];
/// Semi-axes of each rim's ellipse (horizontal, vertical).
const SEMI_AXES: (f32, f32) = (4.0, 3.3);
/// Half the rim's thickness, in pixels.
const HALF_THICKNESS: f32 = 0.8;
/// Row band (top, bottom) of the bridge and the temples.
const BAR_ROWS: (f32, f32) = (10.0, 11.0);

/// Whether the pixel with centre (x, y) is on the frame.
fn on_frame(x: f32, y: f32) -> bool {
    let (a, b) = SEMI_AXES;
    let on_rim = RIMS.iter().any(|&(cx, cy)| {
        let r = (((x - cx) / a).powi(2) + ((y - cy) / b).powi(2)).sqrt();
        // Distance to the ellipse along the radius, close enough for a
        // one-pixel-thick outline.
        (r - 1.0).abs() * a.min(b) <= HALF_THICKNESS
    });
    let in_bar_rows = y >= BAR_ROWS.0 && y <= BAR_ROWS.1;
    let between = x > RIMS[0].0 + SEMI_AXES.0 && x < RIMS[1].0 - SEMI_AXES.0;
    let outside = x < RIMS[0].0 - SEMI_AXES.0 || x > RIMS[1].0 + SEMI_AXES.0;
    on_rim || (in_bar_rows && (between || outside))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("eyeglasses-28.png"));
    let img = image::GrayImage::from_fn(SIZE, SIZE, |x, y| {
        let v = on_frame(x as f32 + 0.5, y as f32 + 0.5);
        image::Luma([if v { 255 } else { 0 }])
    });
    let count = img.pixels().filter(|p| p.0[0] > 0).count();
    img.save(&out)?;
    println!(
        "wrote {} ({count} of {} pixels on the frame)",
        out.display(),
        SIZE * SIZE
    );
    Ok(())
}
