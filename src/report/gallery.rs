//! Galleries: a grid of captioned image tiles under column titles.
//!
//! Each tile is drawn at an integer upscale of its own pixels (nearest
//! neighbour, so that single-pixel perturbations stay visible as sharp
//! squares) with its caption underneath. An optional colour legend at the
//! bottom explains heatmap tiles.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::nn::infer::argmax;
use crate::nn::{Classifier, Model};
use crate::report::{save_rgb, text};

/// Tiles are scaled up until they are at least this many pixels high.
const MIN_TILE_PX: u32 = 112;
/// Caption text height in pixels.
const CAPTION_PX: f32 = 13.0;
/// Column title text height in pixels.
const TITLE_PX: f32 = 15.0;
/// Space around and between tiles.
const GAP: u32 = 8;
const BACKGROUND: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [20, 20, 20];

/// One picture in the grid with its caption.
#[derive(Clone, Debug)]
pub struct Tile {
    /// The picture at its own resolution.
    pub pixels: RgbImage,
    /// Text under the picture; `" | "` separates lines.
    pub caption: String,
}

/// Which colours a heatmap uses and what its ends mean.
#[derive(Clone, Copy, Debug)]
pub struct Legend {
    /// The colour map, from the low end (0) to the high end (1).
    pub gradient: colorous::Gradient,
    /// Text at the low end.
    pub low: &'static str,
    /// Text at the high end.
    pub high: &'static str,
    /// What the colours measure.
    pub title: &'static str,
}

/// The colour legend of perturbation tiles.
pub const PERTURBATION_LEGEND: Legend = Legend {
    gradient: colorous::RED_BLUE,
    low: "darker (-max)",
    high: "brighter (+max)",
    title: "perturbation x_adv - x0, scaled to each tile's largest change",
};

/// The colour legend of heatmap tiles: inferno, perceptually uniform.
pub const HEATMAP_LEGEND: Legend = Legend {
    gradient: colorous::INFERNO,
    low: "0",
    high: "largest",
    title: "attribution |a|, scaled to each tile's largest value",
};

/// The colour legend of saliency tiles ([`Tile::saliency`]): inferno,
/// perceptually uniform, saturating at the tile's 99th percentile.
pub const SALIENCY_LEGEND: Legend = Legend {
    gradient: colorous::INFERNO,
    low: "0",
    high: "99th percentile and above",
    title: "attribution |a|, scaled to each tile's 99th percentile",
};

/// The share of a saliency tile's values below its top colour.
const SALIENCY_PERCENTILE: f64 = 0.99;

/// An RGB colour of `gradient` at `t` in [0, 1] (clamped).
pub fn color(gradient: colorous::Gradient, t: f32) -> [u8; 3] {
    let c = gradient.eval_continuous(f64::from(t.clamp(0.0, 1.0)));
    [c.r, c.g, c.b]
}

/// Luminance of pixel `i` of `[C, H, W]` data: the value itself for one
/// channel, the mean over the first three otherwise.
fn grey(data: &[f32], shape: [usize; 3], i: usize) -> f32 {
    let [c, h, w] = shape;
    if c == 1 {
        data[i]
    } else {
        (0..c.min(3)).map(|ch| data[ch * h * w + i]).sum::<f32>() / c.min(3) as f32
    }
}

impl Tile {
    /// An image `[C, H, W]` with values in [0, 1].
    pub fn image(data: &[f32], shape: [usize; 3], caption: impl Into<String>) -> Tile {
        Tile {
            pixels: crate::data::images::to_rgb_image(data, shape),
            caption: caption.into(),
        }
    }

    /// The difference `adv - clean`, amplified so that the largest change of
    /// this tile reaches the ends of a diverging colour map; unchanged pixels
    /// are the map's neutral middle. Channels are averaged.
    pub fn perturbation(
        adv: &[f32],
        clean: &[f32],
        shape: [usize; 3],
        caption: impl Into<String>,
    ) -> Tile {
        let [_, h, w] = shape;
        let delta: Vec<f32> = adv.iter().zip(clean).map(|(a, c)| a - c).collect();
        let values: Vec<f32> = (0..h * w).map(|i| grey(&delta, shape, i)).collect();
        let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let scale = if max > 0.0 { 0.5 / max } else { 0.0 };
        let pixels = RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let v = values[y as usize * w + x as usize];
            Rgb(color(PERTURBATION_LEGEND.gradient, 0.5 + v * scale))
        });
        Tile {
            pixels,
            caption: caption.into(),
        }
    }

    /// `heat` (`H * W` values, their magnitude is shown) as an inferno
    /// heatmap blended over the greyscale image: black where the attribution
    /// is zero, bright yellow at this tile's largest value.
    pub fn heatmap(
        image: &[f32],
        shape: [usize; 3],
        heat: &[f32],
        caption: impl Into<String>,
    ) -> Tile {
        let max = heat.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        heat_tile(image, shape, heat, max, caption.into())
    }

    /// As [`Tile::heatmap`], but bright yellow from the tile's 99th
    /// percentile of `|heat|` up (the largest value where that percentile is
    /// zero), as saliency maps are usually shown: a gradient's few extreme
    /// pixels would otherwise leave the rest of the map black.
    pub fn saliency(
        image: &[f32],
        shape: [usize; 3],
        heat: &[f32],
        caption: impl Into<String>,
    ) -> Tile {
        let mut sorted: Vec<f32> = heat.iter().map(|v| v.abs()).collect();
        sorted.sort_by(f32::total_cmp);
        let at = ((sorted.len().max(1) - 1) as f64 * SALIENCY_PERCENTILE).round() as usize;
        let top = match sorted.get(at) {
            Some(v) if *v > 0.0 => *v,
            _ => sorted.last().copied().unwrap_or(0.0),
        };
        heat_tile(image, shape, heat, top, caption.into())
    }
}

/// `|heat|` through the inferno map, reaching its top at `top`, blended over
/// a faint copy of the image.
fn heat_tile(image: &[f32], shape: [usize; 3], heat: &[f32], top: f32, caption: String) -> Tile {
    let [_, h, w] = shape;
    let scale = if top > 0.0 { 1.0 / top } else { 0.0 };
    // A faint copy of the image stays visible under the colours.
    const IMAGE_WEIGHT: f32 = 0.25;
    let pixels = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let i = y as usize * w + x as usize;
        let c = color(HEATMAP_LEGEND.gradient, heat[i].abs() * scale);
        let g = grey(image, shape, i).clamp(0.0, 1.0) * 255.0;
        let mix = |v: u8| (f32::from(v) * (1.0 - IMAGE_WEIGHT) + g * IMAGE_WEIGHT).round() as u8;
        Rgb([mix(c[0]), mix(c[1]), mix(c[2])])
    });
    Tile { pixels, caption }
}

/// A grid of tiles: one title per column, rows of tiles, optional legends.
#[derive(Clone, Debug, Default)]
pub struct Gallery {
    /// Column titles.
    pub columns: Vec<String>,
    /// Rows of tiles; a row may be shorter than the title row.
    pub rows: Vec<Vec<Tile>>,
    /// Colour legends drawn under the grid.
    pub legends: Vec<Legend>,
}

impl Gallery {
    /// An empty gallery with these column titles.
    pub fn new(columns: Vec<String>) -> Gallery {
        Gallery {
            columns,
            ..Default::default()
        }
    }

    /// Appends a row.
    pub fn push_row(&mut self, row: Vec<Tile>) {
        self.rows.push(row);
    }

    /// Renders the grid.
    pub fn render(&self) -> RgbImage {
        let tiles = self.rows.iter().flatten();
        let tile_h = tiles
            .clone()
            .map(|t| t.pixels.height())
            .max()
            .unwrap_or(1)
            .max(1);
        let tile_w = tiles
            .clone()
            .map(|t| t.pixels.width())
            .max()
            .unwrap_or(1)
            .max(1);
        let scale = MIN_TILE_PX.div_ceil(tile_h).max(1);
        let caption_lines = tiles
            .clone()
            .map(|t| t.caption.split(" | ").count())
            .max()
            .unwrap_or(0) as u32;
        let widest_caption = tiles
            .clone()
            .flat_map(|t| t.caption.split(" | ").map(|l| text::width(l, CAPTION_PX)))
            .chain(self.columns.iter().map(|c| text::width(c, TITLE_PX)))
            .max()
            .unwrap_or(0);

        let cell_w = (tile_w * scale).max(widest_caption) + GAP;
        let line_h = CAPTION_PX as u32 + 3;
        let cell_h = tile_h * scale + caption_lines * line_h + GAP;
        let columns = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.columns.len()])
            .max()
            .unwrap_or(1)
            .max(1) as u32;
        let title_h = if self.columns.is_empty() {
            0
        } else {
            TITLE_PX as u32 + GAP
        };
        let legend_h = self.legends.len() as u32 * LEGEND_H;
        let width = GAP + columns * cell_w;
        let height = GAP + title_h + self.rows.len() as u32 * cell_h + legend_h + GAP;
        let width = width.max(LEGEND_W + 2 * GAP);
        let mut img = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));

        for (c, title) in self.columns.iter().enumerate() {
            let cx = (GAP + c as u32 * cell_w + cell_w / 2) as i32;
            text::draw_centered(&mut img, title, cx, GAP as i32, TITLE_PX, INK);
        }
        for (r, row) in self.rows.iter().enumerate() {
            let top = GAP + title_h + r as u32 * cell_h;
            for (c, tile) in row.iter().enumerate() {
                let left = GAP + c as u32 * cell_w;
                let (tw, th) = (tile.pixels.width() * scale, tile.pixels.height() * scale);
                let x0 = left + (cell_w - GAP - tw) / 2;
                for y in 0..th {
                    for x in 0..tw {
                        img.put_pixel(
                            x0 + x,
                            top + y,
                            *tile.pixels.get_pixel(x / scale, y / scale),
                        );
                    }
                }
                let cx = (left + (cell_w - GAP) / 2) as i32;
                for (l, line) in tile.caption.split(" | ").enumerate() {
                    let y = (top + th + 2 + l as u32 * line_h) as i32;
                    text::draw_centered(&mut img, line, cx, y, CAPTION_PX, INK);
                }
            }
        }
        let mut top = GAP + title_h + self.rows.len() as u32 * cell_h;
        for legend in &self.legends {
            draw_legend(&mut img, legend, GAP, top);
            top += LEGEND_H;
        }
        img
    }

    /// Renders the grid and writes it as PNG.
    pub fn save(&self, path: &Path) -> Result<()> {
        save_rgb(&self.render(), path)
    }
}

const LEGEND_W: u32 = 240;
const LEGEND_H: u32 = 52;

/// A colour bar with its two end labels and a title above it.
fn draw_legend(img: &mut RgbImage, legend: &Legend, left: u32, top: u32) {
    text::draw(img, legend.title, left as i32, top as i32, CAPTION_PX, INK);
    let bar_top = top + CAPTION_PX as u32 + 4;
    let bar_h = 12;
    for x in 0..LEGEND_W {
        let c = color(legend.gradient, x as f32 / (LEGEND_W - 1) as f32);
        for y in 0..bar_h {
            if left + x < img.width() && bar_top + y < img.height() {
                img.put_pixel(left + x, bar_top + y, Rgb(c));
            }
        }
    }
    let label_y = (bar_top + bar_h + 2) as i32;
    text::draw(img, legend.low, left as i32, label_y, CAPTION_PX - 2.0, INK);
    let hw = text::width(legend.high, CAPTION_PX - 2.0) as i32;
    text::draw(
        img,
        legend.high,
        (left + LEGEND_W) as i32 - hw,
        label_y,
        CAPTION_PX - 2.0,
        INK,
    );
}

/// A gallery of an attack's first `rows` samples: the clean image, the
/// adversarial image and their difference (amplified), each captioned with
/// the model's class and confidence, the label and, for targeted attacks,
/// the target. `x0` and `adv` hold whole batches of the model's input shape.
pub fn attack_gallery(
    gpu: &Gpu,
    model: &Model,
    x0: &[f32],
    adv: &[f32],
    labels: &[u32],
    targets: Option<&[u32]>,
    rows: usize,
) -> Result<Gallery> {
    let d = model.input_len();
    let rows = rows.min(labels.len());
    if x0.len() < rows * d || adv.len() < rows * d || targets.is_some_and(|t| t.len() < rows) {
        return Err(Error::Shape {
            what: "attack gallery".into(),
            expected: format!("{rows} images of {d} values, labels and targets"),
            got: format!("{} clean and {} adversarial values", x0.len(), adv.len()),
        });
    }
    let classifier = Classifier::new(gpu, model, rows.max(1))?;
    let k = model.num_classes();
    let clean_p = classifier.probabilities(&x0[..rows * d])?;
    let adv_p = classifier.probabilities(&adv[..rows * d])?;
    let top = |p: &[f32]| {
        let c = argmax(p);
        format!("{} ({:.0}%)", model.class_name(c), 100.0 * p[c])
    };

    let mut gallery = Gallery::new(vec![
        "clean".into(),
        "adversarial".into(),
        "perturbation".into(),
    ]);
    gallery.legends.push(PERTURBATION_LEGEND);
    for i in 0..rows {
        let (c, a) = (&x0[i * d..(i + 1) * d], &adv[i * d..(i + 1) * d]);
        let max = c
            .iter()
            .zip(a)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max);
        let aim = match targets {
            Some(t) => format!(" (target {})", model.class_name(t[i] as usize)),
            None => String::new(),
        };
        let label = model.class_name(labels[i] as usize);
        gallery.push_row(vec![
            Tile::image(
                c,
                model.input_shape,
                format!("label {label} | {}", top(&clean_p[i * k..(i + 1) * k])),
            ),
            Tile::image(
                a,
                model.input_shape,
                format!("{}{aim}", top(&adv_p[i * k..(i + 1) * k])),
            ),
            Tile::perturbation(a, c, model.input_shape, format!("max |change| {max:.3}")),
        ]);
    }
    Ok(gallery)
}
