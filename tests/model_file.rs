//! Loading model files: round trips, and a clear error for every kind of bad file.

use std::collections::HashMap;

use advgpu::data::{bundled_model, small_cnn};
use advgpu::nn::{Layer, Model};
use advgpu::Error;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

/// A small valid model: conv, relu, flatten, linear.
fn small() -> Model {
    let layers = vec![
        Layer::Conv2d {
            in_channels: 1,
            out_channels: 2,
            kernel_size: 3,
            stride: 1,
            padding: 0,
            bias: true,
        },
        Layer::Relu,
        Layer::Flatten,
        Layer::Linear {
            in_features: 2 * 3 * 3,
            out_features: 4,
            bias: true,
        },
    ];
    Model::init(layers, [1, 5, 5], 7).unwrap()
}

/// Writes a safetensors file with raw `tensors` and `meta`.
fn file(tensors: &[(&str, Vec<usize>, Vec<u8>)], meta: &[(&str, &str)]) -> Vec<u8> {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, s, d)| {
            (
                k.to_string(),
                TensorView::new(Dtype::F32, s.clone(), d).unwrap(),
            )
        })
        .collect();
    let meta: HashMap<String, String> = meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    safetensors::serialize(views, Some(meta)).unwrap()
}

fn f32s(n: usize) -> Vec<u8> {
    vec![0u8; 4 * n]
}

const LAYERS: &str = r#"[{"type":"conv2d","in_channels":1,"out_channels":2,"kernel_size":3},{"type":"relu"},{"type":"flatten"},{"type":"linear","in_features":18,"out_features":4}]"#;

fn meta(layers: &str) -> Vec<(&str, &str)> {
    vec![
        ("advgpu.format", "1"),
        ("advgpu.input_shape", "[1,5,5]"),
        ("advgpu.layers", layers),
    ]
}

fn good_tensors() -> Vec<(&'static str, Vec<usize>, Vec<u8>)> {
    vec![
        ("0.weight", vec![2, 1, 3, 3], f32s(18)),
        ("0.bias", vec![2], f32s(2)),
        ("3.weight", vec![4, 18], f32s(72)),
        ("3.bias", vec![4], f32s(4)),
    ]
}

/// The error message of loading `bytes`, which must fail.
fn load_error(bytes: &[u8]) -> String {
    match Model::from_bytes(bytes, "test.safetensors") {
        Ok(_) => panic!("a bad file loaded"),
        Err(e @ Error::Model { .. }) => e.to_string(),
        Err(other) => panic!("expected a model error, got {other:?}"),
    }
}

#[test]
fn a_model_survives_a_save_and_load_round_trip() {
    let m = small();
    let back = Model::from_bytes(&m.to_bytes().unwrap(), "mem").unwrap();
    assert_eq!(back, m);
}

#[test]
fn a_hand_written_file_with_defaults_loads() {
    let m = Model::from_bytes(&file(&good_tensors(), &meta(LAYERS)), "x").unwrap();
    assert_eq!(m.num_classes(), 4);
    assert!(matches!(
        m.layers[0],
        Layer::Conv2d {
            stride: 1,
            padding: 0,
            bias: true,
            ..
        }
    ));
}

#[test]
fn the_bundled_model_has_the_documented_architecture() {
    let m = bundled_model().unwrap();
    assert_eq!(m.layers, small_cnn());
    assert_eq!(m.input_shape, [1, 28, 28]);
    assert_eq!(m.num_classes(), 10);
}

#[test]
fn a_truncated_file_is_refused() {
    let bytes = file(&good_tensors(), &meta(LAYERS));
    for cut in [0, 5, 8, 40, bytes.len() - 1] {
        let msg = load_error(&bytes[..cut]);
        assert!(
            msg.contains("not a valid safetensors file"),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn a_missing_tensor_is_named() {
    let mut t = good_tensors();
    t.remove(2);
    let msg = load_error(&file(&t, &meta(LAYERS)));
    assert!(msg.contains("missing tensor \"3.weight\""), "{msg}");
    assert!(msg.contains("[4, 18]"), "{msg}");
}

#[test]
fn a_wrong_shape_is_named_with_both_shapes() {
    let mut t = good_tensors();
    t[0] = ("0.weight", vec![2, 1, 2, 2], f32s(8));
    let msg = load_error(&file(&t, &meta(LAYERS)));
    assert!(
        msg.contains("\"0.weight\" has shape [2, 1, 2, 2], expected [2, 1, 3, 3]"),
        "{msg}"
    );
}

#[test]
fn an_unknown_layer_type_is_named() {
    let layers = LAYERS.replace(r#"{"type":"relu"}"#, r#"{"type":"gelu"}"#);
    let msg = load_error(&file(&good_tensors(), &meta(&layers)));
    assert!(msg.contains("gelu"), "{msg}");
}

#[test]
fn an_unsupported_hyperparameter_is_refused_not_ignored() {
    let layers = LAYERS.replace(r#""kernel_size":3}"#, r#""kernel_size":3,"dilation":2}"#);
    let msg = load_error(&file(&good_tensors(), &meta(&layers)));
    assert!(msg.contains("dilation"), "{msg}");
}

#[test]
fn a_tensor_that_belongs_to_no_layer_is_refused() {
    let mut t = good_tensors();
    t.push(("1.weight", vec![1], f32s(1)));
    let msg = load_error(&file(&t, &meta(LAYERS)));
    assert!(msg.contains("\"1.weight\" belongs to no layer"), "{msg}");
}

#[test]
fn layers_that_do_not_chain_are_refused() {
    let layers = LAYERS.replace(r#""in_features":18"#, r#""in_features":19"#);
    let msg = load_error(&file(&good_tensors(), &meta(&layers)));
    assert!(
        msg.contains("in_features is 19, but its input has 18 features"),
        "{msg}"
    );
}

#[test]
fn a_header_claiming_absurd_sizes_is_refused_without_allocating() {
    // A header whose length field claims about 2^62 bytes.
    let mut bytes = (1u64 << 62).to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    assert!(load_error(&bytes).contains("not a valid safetensors file"));

    // A tensor whose declared shape and offsets reach far past the end of the file.
    let header = r#"{"0.weight":{"dtype":"F32","shape":[1000000000,1000000],"data_offsets":[0,4000000000000000]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0u8; 16]);
    assert!(load_error(&bytes).contains("not a valid safetensors file"));

    // Layer hyperparameters far beyond any real network.
    let layers = LAYERS.replace(r#""out_channels":2"#, r#""out_channels":100000000000"#);
    let msg = load_error(&file(&good_tensors(), &meta(&layers)));
    assert!(msg.contains("out_channels 100000000000"), "{msg}");

    // An input shape with more values than any model here could take.
    let mut m = meta(LAYERS);
    m[1] = ("advgpu.input_shape", "[1,4000000000,4000000000]");
    let msg = load_error(&file(&good_tensors(), &m));
    assert!(msg.contains("input shape"), "{msg}");
}

#[test]
fn missing_metadata_is_named() {
    let msg = load_error(&file(&good_tensors(), &[("advgpu.format", "1")]));
    assert!(msg.contains("advgpu.layers"), "{msg}");
}

#[test]
fn a_wrong_dtype_is_refused() {
    let mut bytes_meta = meta(LAYERS);
    bytes_meta.truncate(3);
    let views = vec![(
        "0.weight".to_string(),
        TensorView::new(Dtype::F16, vec![2, 1, 3, 3], &[0u8; 36]).unwrap(),
    )];
    let meta: HashMap<String, String> = bytes_meta
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let bytes = safetensors::serialize(views, Some(meta)).unwrap();
    let msg = load_error(&bytes);
    assert!(msg.contains("F16") && msg.contains("expected F32"), "{msg}");
}
