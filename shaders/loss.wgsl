// Softmax cross-entropy with its gradient, per sample.
//
// Layout: logits [N, K]; labels [N] (u32 class indices); loss [N]; grad [N, K];
// pred [N] (u32, the arg-max class, first on ties).
//
//   loss[n]    = logsumexp(z[n]) - z[n, label[n]]
//   grad[n, k] = sign * scale * (softmax(z[n])_k - [k == label[n]])
//
// `scale` is 1/N for the batch-mean loss used in training and 1 for attacks,
// which need each sample's own gradient. `sign` is +1 to ascend the loss
// (untargeted attacks) or -1 to descend it (targeted attacks, training's
// gradient is then negated by the optimiser instead, so training uses +1).
//
// Bindings: 0 params (uniform); 1 logits; 2 labels; 3 loss; 4 grad; 5 pred.
// Dispatch: one invocation per sample, 64-wide workgroups.

struct Params {
    batch: u32,
    classes: u32,
    scale: f32,
    sign: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;
@group(0) @binding(5) var<storage, read_write> pred: array<u32>;

@compute @workgroup_size(64)
fn softmax_cross_entropy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let n = gid.x + gid.y * nwg.x * 64u;
    if n >= p.batch {
        return;
    }
    let row = n * p.classes;

    // Subtracting the maximum keeps exp() finite.
    var zmax = logits[row];
    var best = 0u;
    for (var k = 1u; k < p.classes; k++) {
        if logits[row + k] > zmax {
            zmax = logits[row + k];
            best = k;
        }
    }
    var sum = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        sum += exp(logits[row + k] - zmax);
    }
    let label = min(labels[n], p.classes - 1u);
    loss[n] = log(sum) + zmax - logits[row + label];
    pred[n] = best;

    let f = p.sign * p.scale;
    for (var k = 0u; k < p.classes; k++) {
        let prob = exp(logits[row + k] - zmax) / sum;
        grad[row + k] = f * (prob - select(0.0, 1.0, k == label));
    }
}
