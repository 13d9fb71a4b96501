//! Every shader parses and validates with naga, the WGSL compiler wgpu uses,
//! so a broken kernel fails here with naga's message rather than at pipeline
//! creation on some user's device.

use advgpu::gpu::{shader_source, SHADERS};

#[test]
fn every_shader_validates_with_naga() {
    assert!(SHADERS.len() >= 8, "the shader table lost entries");
    for (name, _) in SHADERS {
        let source = shader_source(name).expect("listed shaders have a source");
        let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| {
            panic!("{name}.wgsl does not parse:\n{}", e.emit_to_string(&source))
        });
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}.wgsl does not validate: {e:?}"));
    }
}

#[test]
fn every_shader_file_in_the_folder_is_listed() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(
            SHADERS.iter().any(|(n, _)| *n == stem),
            "{} is not in gpu::SHADERS, so it is neither compiled into the binary nor validated",
            path.display()
        );
    }
}

#[test]
fn includes_are_resolved() {
    for (name, text) in SHADERS {
        if text.contains("// #include rng") {
            let full = shader_source(name).unwrap();
            assert!(
                full.contains("fn philox2x32"),
                "{name} includes rng but the source lacks it"
            );
        }
    }
}
