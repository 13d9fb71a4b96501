//! Pictures: tiles show exactly their pixels, perturbations and heatmaps
//! map to the ends of their colour maps, galleries lay tiles out under
//! their titles with captions and legends, and plots render and save.

use advgpu::report::gallery::{color, Gallery, Tile, HEATMAP_LEGEND, PERTURBATION_LEGEND};
use advgpu::report::plot::{LinePlot, Series};

#[test]
fn an_image_tile_holds_the_image_bytes() {
    let data = [0.0, 0.5, 1.0, 0.25];
    let tile = Tile::image(&data, [1, 2, 2], "x");
    let bytes: Vec<u8> = tile.pixels.pixels().map(|p| p.0[0]).collect();
    assert_eq!(bytes, vec![0, 128, 255, 64]);
}

#[test]
fn a_perturbation_tile_spans_its_diverging_map() {
    let clean = [0.5, 0.5, 0.5, 0.5];
    let adv = [0.5, 0.6, 0.4, 0.55];
    let tile = Tile::perturbation(&adv, &clean, [1, 2, 2], "d");
    let px = |i: u32| tile.pixels.get_pixel(i % 2, i / 2).0;
    assert_eq!(
        px(0),
        color(PERTURBATION_LEGEND.gradient, 0.5),
        "no change: the middle"
    );
    assert_eq!(
        px(1),
        color(PERTURBATION_LEGEND.gradient, 1.0),
        "largest increase: the top"
    );
    assert_eq!(
        px(2),
        color(PERTURBATION_LEGEND.gradient, 0.0),
        "largest decrease: the bottom"
    );
}

#[test]
fn a_heatmap_tile_is_dark_at_zero_and_bright_at_the_maximum() {
    let image = [0.0; 4];
    let heat = [0.0, -2.0, 1.0, 0.5];
    let tile = Tile::heatmap(&image, [1, 2, 2], &heat, "h");
    let luma = |i: u32| {
        let p = tile.pixels.get_pixel(i % 2, i / 2).0;
        p.iter().map(|v| u32::from(*v)).sum::<u32>()
    };
    // |heat| is shown: -2 is the largest magnitude.
    assert!(luma(1) > luma(2) && luma(2) > luma(3) && luma(3) > luma(0));
    let top = color(HEATMAP_LEGEND.gradient, 1.0);
    let got = tile.pixels.get_pixel(1, 0).0;
    // 75% colour over a black image.
    for c in 0..3 {
        assert_eq!(got[c], (f32::from(top[c]) * 0.75).round() as u8);
    }
}

#[test]
fn a_gallery_scales_tiles_and_adds_captions_and_a_legend() {
    let white = [1.0f32; 16];
    let mut gallery = Gallery::new(vec!["one".into(), "two".into()]);
    gallery.push_row(vec![
        Tile::image(&white, [1, 4, 4], "a | b"),
        Tile::image(&white, [1, 4, 4], "c"),
    ]);
    gallery.push_row(vec![Tile::image(&[0.0; 16], [1, 4, 4], "d")]);
    let plain = gallery.render();
    gallery.legends.push(HEATMAP_LEGEND);
    let img = gallery.render();
    // A 4-pixel tile is scaled to at least 112 pixels: 28x.
    assert!(img.width() >= 2 * 112 && img.height() > 2 * 112);
    assert!(img.height() > plain.height(), "the legend adds a band");
    // The legend band holds the colour map's top colour somewhere.
    let top = color(HEATMAP_LEGEND.gradient, 1.0);
    let band = (plain.height() - 8)..img.height();
    assert!(band
        .clone()
        .any(|y| (0..img.width()).any(|x| img.get_pixel(x, y).0 == top)));
    // Captions are dark text on white, under the first tile.
    let below_tile = (8 + 15 + 8 + 112)..(8 + 15 + 8 + 112 + 30);
    let dark = below_tile
        .flat_map(|y| (0..img.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
        .count();
    assert!(dark > 20, "only {dark} dark caption pixels");
}

#[test]
fn a_line_plot_renders_and_saves() {
    let mut plot = LinePlot::new("t".into(), "eps".into(), "accuracy".into());
    plot.y_range = Some((0.0, 1.0));
    plot.series.push(Series {
        label: "robust".into(),
        points: vec![(0.0, 0.99), (0.1, 0.5), (0.2, 0.1)],
    });
    let img = plot.render().unwrap();
    assert_eq!((img.width(), img.height()), plot.size);
    // The first line colour appears (Okabe-Ito blue).
    assert!(img.pixels().any(|p| p.0 == [0, 114, 178]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plot.png");
    plot.save(&path).unwrap();
    let back = image::open(&path).unwrap();
    assert_eq!((back.width(), back.height()), plot.size);
}
