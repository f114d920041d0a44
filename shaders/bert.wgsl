// bert — the sentence encoder's kernels besides its linear layers (those run on project.wgsl):
// embeddings + layer norm, multi-head attention with the padding mask, residual + layer norm,
// and pooling with L2 normalisation.
//
// CPU twin: `embed::bert::Bert::embed` (the candle encoder): the same forward pass, the oracle
// the pooled vectors are tested against.
// Host mirror of `BertDims`: `embed::gpu::BertDims` — keep the two in sync.

const WG: u32 = 128u;

struct BertDims {
    rows: u32,    // tokens in the batch (B × L)
    len: u32,     // L, padded length
    hidden: u32,  // H
    heads: u32,
    pooling: u32, // 0 mean, 1 cls, 2 max, 3 mean / sqrt(len)
    eps: f32,
    scale: f32,   // attention: 1 / sqrt(head dim)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> dims: BertDims;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> ids: array<u32>;
@group(0) @binding(6) var<storage, read> gamma: array<f32>;
@group(0) @binding(7) var<storage, read> beta: array<f32>;

var<workgroup> red: array<f32, WG>;
var<workgroup> red2: array<f32, WG>;

// Layer norm of one row held in `out` (one workgroup per row): mean and variance by tree
// reduction, then γ (x − mean) / √(var + ε) + β.
fn normalize_row(row: u32, lid: u32) {
    let h = dims.hidden;
    var s = 0.0;
    var s2 = 0.0;
    for (var c = lid; c < h; c += WG) {
        let v = out[row * h + c];
        s += v;
        s2 += v * v;
    }
    red[lid] = s;
    red2[lid] = s2;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            red[lid] += red[lid + stride];
            red2[lid] += red2[lid + stride];
        }
        workgroupBarrier();
    }
    let mean = red[0] / f32(h);
    let var_ = max(red2[0] / f32(h) - mean * mean, 0.0);
    let inv = inverseSqrt(var_ + dims.eps);
    for (var c = lid; c < h; c += WG) {
        out[row * h + c] = gamma[c] * (out[row * h + c] - mean) * inv + beta[c];
    }
}

// Embeddings: out[t] = LayerNorm(word[ids[t]] + position[t mod L] + type0), where `w` holds the
// word table and `bias` the position table with the token-type-0 row already added.
@compute @workgroup_size(WG)
fn embed(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if row >= dims.rows {
        return;
    }
    let h = dims.hidden;
    let id = ids[row];
    let pos = row % dims.len;
    for (var c = lid; c < h; c += WG) {
        out[row * h + c] = w[id * h + c] + bias[pos * h + c];
    }
    workgroupBarrier();
    normalize_row(row, lid);
}

// out[t] = LayerNorm(a[t] + bias + w[t]): the projection `a` (bias not yet added), plus the
// residual stream `w`.
@compute @workgroup_size(WG)
fn add_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wid.x + wid.y * nwg.x;
    if row >= dims.rows {
        return;
    }
    let h = dims.hidden;
    for (var c = lid; c < h; c += WG) {
        out[row * h + c] = a[row * h + c] + bias[c] + w[row * h + c];
    }
    workgroupBarrier();
    normalize_row(row, lid);
}

// Multi-head attention, one invocation per (token, head), one pass over the keys: `a` holds
// Q | K | V (rows × 3H) and `ids` the attention mask (1 = token). softmax(q·k / √d + mask) · V
// into out (rows × H).
@compute @workgroup_size(64)
fn attention(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let item = gid.x + gid.y * nwg.x * 64u;
    let heads = dims.heads;
    if item >= dims.rows * heads {
        return;
    }
    let row = item / heads;
    let head = item % heads;
    let h = dims.hidden;
    let dh = h / heads;
    let l = dims.len;
    let seq = row / l;
    let q0 = row * 3u * h + head * dh;
    let o0 = row * h + head * dh;
    for (var d = 0u; d < dh; d++) {
        out[o0 + d] = 0.0;
    }
    // One pass with an online softmax: m is the running maximum score, total = Σ exp(s − m), and
    // the output accumulator is rescaled whenever m grows.
    var m = -3.0e38;
    var total = 0.0;
    for (var j = 0u; j < l; j++) {
        let key = seq * l + j;
        if ids[key] == 0u {
            continue;
        }
        let k0 = key * 3u * h + h + head * dh;
        var s = 0.0;
        for (var d = 0u; d < dh; d++) {
            s += a[q0 + d] * a[k0 + d];
        }
        s *= dims.scale;
        if s > m {
            let shrink = exp(m - s);
            total *= shrink;
            for (var d = 0u; d < dh; d++) {
                out[o0 + d] *= shrink;
            }
            m = s;
        }
        let p = exp(s - m);
        total += p;
        let v0 = key * 3u * h + 2u * h + head * dh;
        for (var d = 0u; d < dh; d++) {
            out[o0 + d] += p * a[v0 + d];
        }
    }
    let inv = 1.0 / max(total, 1e-30);
    for (var d = 0u; d < dh; d++) {
        out[o0 + d] *= inv;
    }
}

// One sentence per workgroup: pool its token vectors (`a`, mask in `ids`) and L2-normalise.
@compute @workgroup_size(WG)
fn pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seq = wid.x;
    let h = dims.hidden;
    let l = dims.len;
    var count = 0.0;
    for (var t = 0u; t < l; t++) {
        count += f32(ids[seq * l + t]);
    }
    var sq = 0.0;
    for (var c = lid; c < h; c += WG) {
        var v = 0.0;
        if dims.pooling == 1u {
            v = a[seq * l * h + c];
        } else if dims.pooling == 2u {
            v = -3.0e38;
            for (var t = 0u; t < l; t++) {
                if ids[seq * l + t] != 0u {
                    v = max(v, a[(seq * l + t) * h + c]);
                }
            }
        } else {
            for (var t = 0u; t < l; t++) {
                if ids[seq * l + t] != 0u {
                    v += a[(seq * l + t) * h + c];
                }
            }
            if dims.pooling == 3u {
                v /= sqrt(max(count, 1e-9));
            } else {
                v /= max(count, 1e-9);
            }
        }
        out[seq * h + c] = v;
        sq += v * v;
    }
    red[lid] = sq;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    let inv = 1.0 / max(sqrt(red[0]), 1e-12);
    for (var c = lid; c < h; c += WG) {
        out[seq * h + c] *= inv;
    }
}
