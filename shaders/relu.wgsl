// Rectified linear unit: forward, gradient to the input, and the guided variant.
//
// Layout: any shape, elementwise over `len` values.
//
//   y  = max(x, 0)
//   gx = gy * [y > 0]                      (backward; [y > 0] = [x > 0])
//   gx = max(gy, 0) * [y > 0]              (backward_guided: guided backpropagation,
//                                           Springenberg et al. 2015, passes only
//                                           positive gradients through each ReLU)
//
// The backward passes read the layer's output y, not its input: when the
// ReLU is fused into the convolution before it, only y is written.
//
// Bindings: 0 params (uniform); 1 x; 2 y; 3 gy; 4 gx.
// Dispatch: 64-wide workgroups, linear index gid.x + gid.y * num_workgroups.x * 64.

struct Params {
    len: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read_write> gx: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i < p.len {
        y[i] = max(x[i], 0.0);
    }
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i < p.len {
        gx[i] = select(0.0, gy[i], y[i] > 0.0);
    }
}

@compute @workgroup_size(64)
fn backward_guided(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if i < p.len {
        gx[i] = select(0.0, max(gy[i], 0.0), y[i] > 0.0);
    }
}
