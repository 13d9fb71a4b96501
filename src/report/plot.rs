//! Line plots: a few labelled series of (x, y) points with a legend.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::report::{save_rgb, FONT};

/// One line of a plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its name in the legend.
    pub label: String,
    /// The points, drawn in order and marked.
    pub points: Vec<(f64, f64)>,
}

/// A plot of several series against a shared x axis.
#[derive(Clone, Debug)]
pub struct LinePlot {
    /// Text above the plot.
    pub title: String,
    /// Name of the x axis.
    pub x_label: String,
    /// Name of the y axis.
    pub y_label: String,
    /// Fixed y range; `None` fits the data.
    pub y_range: Option<(f64, f64)>,
    /// The lines.
    pub series: Vec<Series>,
    /// Size in pixels.
    pub size: (u32, u32),
}

/// Line colours, in order: distinguishable also for red-green colour blindness
/// (Okabe and Ito 2008).
const COLORS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
];

/// Registers the bundled font as plotters' `sans-serif`, once per process.
fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Only fails for a font file that does not parse; the bundled one does,
        // and a missing font would show as missing text, not as a crash.
        if plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            log::warn!("the bundled font did not load; plots will have no text");
        }
    });
}

impl LinePlot {
    /// An empty 720 x 460 plot.
    pub fn new(title: String, x_label: String, y_label: String) -> LinePlot {
        LinePlot {
            title,
            x_label,
            y_label,
            y_range: None,
            series: Vec::new(),
            size: (720, 460),
        }
    }

    /// The x and y ranges covering every point, widened when flat.
    fn ranges(&self) -> ((f64, f64), (f64, f64)) {
        let points = self.series.iter().flat_map(|s| s.points.iter());
        let fold = |f: fn(&(f64, f64)) -> f64| {
            points
                .clone()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                    (lo.min(v), hi.max(v))
                })
        };
        let widen = |(lo, hi): (f64, f64)| {
            if !lo.is_finite() || !hi.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-12 {
                (lo - 0.5, hi + 0.5)
            } else {
                (lo, hi)
            }
        };
        let x = widen(fold(|p| p.0));
        let y = self.y_range.unwrap_or_else(|| {
            let (lo, hi) = widen(fold(|p| p.1));
            let pad = 0.05 * (hi - lo);
            (lo - pad, hi + pad)
        });
        (x, y)
    }

    /// Renders the plot into an RGB image.
    pub fn render(&self) -> std::result::Result<image::RgbImage, String> {
        register_font();
        let (w, h) = self.size;
        let mut buffer = vec![0u8; (w * h * 3) as usize];
        let ((x0, x1), (y0, y1)) = self.ranges();
        {
            let root = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
            root.fill(&WHITE).map_err(|e| e.to_string())?;
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 20))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(56)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc(&self.x_label)
                .y_desc(&self.y_label)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| e.to_string())?;
            for (i, s) in self.series.iter().enumerate() {
                let color = COLORS[i % COLORS.len()];
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?
                    .label(&s.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            if self.series.iter().any(|s| !s.label.is_empty()) {
                chart
                    .configure_series_labels()
                    .label_font(("sans-serif", 14))
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| e.to_string())?;
            }
            root.present().map_err(|e| e.to_string())?;
        }
        image::RgbImage::from_raw(w, h, buffer)
            .ok_or_else(|| "plot buffer has the wrong size".to_string())
    }

    /// Renders the plot and writes it as PNG.
    pub fn save(&self, path: &Path) -> Result<()> {
        let image = self.render().map_err(|reason| Error::Render {
            path: path.to_path_buf(),
            reason,
        })?;
        save_rgb(&image, path)
    }
}
