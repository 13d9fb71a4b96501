// Per-channel input normalisation, as robust-accuracy models often carry it.
//
// Layout: x, y [N, C, H, W]; mean, std [C].
//
//   y[n,c,h,w]  = (x[n,c,h,w] - mean[c]) / std[c]
//   gx[n,c,h,w] = gy[n,c,h,w] / std[c]
//
// No trainable parameters.
//
// Bindings: 0 params (uniform); 1 x; 2 y; 3 gy; 4 gx; 5 mean; 6 std.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64.

struct Params {
    len: u32,
    channels: u32,
    plane: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;
@group(0) @binding(5) var<storage, read> mean: array<f32>;
@group(0) @binding(6) var<storage, read> std_dev: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i < p.len {
        let c = (i / p.plane) % p.channels;
        y[i] = (x[i] - mean[c]) / std_dev[c];
    }
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i < p.len {
        let c = (i / p.plane) % p.channels;
        gx[i] = gy[i] / std_dev[c];
    }
}
