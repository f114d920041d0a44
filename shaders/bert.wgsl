// bert — the sentence encoder's kernels besides its linear layers (those run on project.wgsl):
// embeddings + layer norm, multi-head attention with the padding mask, residual + layer norm,
// and pooling with L2 normalisation.
//
// CPU references: `encoders::reference::{embed, add_norm, attention, pool}`, one per entry point;
// `encoders::reference::forward` chains them as the GPU encoder does, and the candle encoder is
// tested against it.
// Host mirror of `BertDims`: `encoders::reference::BertDims` (the layout test compares every field offset).

const WG: u32 = 128u;
// Added to `pooling`: leave the pooled vectors unnormalised (a head runs on them first).
const POOL_RAW: u32 = 4u;

struct BertDims {
    rows: u32,    // tokens in the batch (B × L)
    len: u32,     // L, padded length
    hidden: u32,  // H
    heads: u32,
    pooling: u32, // 0 mean, 1 cls, 2 max, 3 mean / sqrt(len); + POOL_RAW: not L2-normalised
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

// Multi-head attention, flash style. `a` holds Q | K | V (rows × 3H), `ids` the attention mask
// (1 = token); out (rows × H) = softmax(q·k / √d + mask) · V per head.
//
// One workgroup per (sequence, head, block of AQ queries); each invocation owns one query, kept
// in registers with its running maximum, normaliser and output accumulator (online softmax:
// one pass over the keys, no score matrix). The keys and values of the sequence stream through
// workgroup memory STAGE / HEAD_DIM keys at a time, so every K/V element is read from device
// memory once per query block instead of once per query. HEAD_DIM is a pipeline constant: the
// driver sees constant loop bounds and keeps q and the accumulator in registers.
override HEAD_DIM: u32 = 32u;
const MAX_HEAD_DIM: u32 = 64u;
const AQ: u32 = 32u;
// Floats of K (and of V) staged per step: min(STAGE / HEAD_DIM, MAX_KEYS) keys, e.g. 32 keys
// at HEAD_DIM = 32, 16 at 64.
const STAGE: u32 = 1024u;
const MAX_KEYS: u32 = 64u;
var<workgroup> sk: array<f32, STAGE>;
var<workgroup> sv: array<f32, STAGE>;
var<workgroup> skeep: array<u32, MAX_KEYS>;

@compute @workgroup_size(AQ)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let l = dims.len;
    let heads = dims.heads;
    let qblocks = (l + AQ - 1u) / AQ;
    let item = wid.x + wid.y * nwg.x;
    // Uniform per workgroup, so the barriers below stay in uniform control flow.
    if item >= (dims.rows / l) * heads * qblocks {
        return;
    }
    let qb = item % qblocks;
    let head = (item / qblocks) % heads;
    let seq = item / (qblocks * heads);
    let h = dims.hidden;
    let kt = min(STAGE / HEAD_DIM, MAX_KEYS);
    let qi = min(qb * AQ + lid, l - 1u);
    let q0 = (seq * l + qi) * 3u * h + head * HEAD_DIM;
    var q: array<f32, MAX_HEAD_DIM>;
    var acc: array<f32, MAX_HEAD_DIM>;
    for (var d = 0u; d < HEAD_DIM; d++) {
        q[d] = a[q0 + d] * dims.scale;
        acc[d] = 0.0;
    }
    var m = -3.0e38;
    var total = 0.0;
    for (var k0 = 0u; k0 < l; k0 += kt) {
        let kn = min(kt, l - k0);
        for (var e = lid; e < kn * HEAD_DIM; e += AQ) {
            let base = (seq * l + k0 + e / HEAD_DIM) * 3u * h + head * HEAD_DIM + e % HEAD_DIM;
            sk[e] = a[base + h];
            sv[e] = a[base + 2u * h];
        }
        for (var j = lid; j < kn; j += AQ) {
            skeep[j] = ids[seq * l + k0 + j];
        }
        workgroupBarrier();
        for (var j = 0u; j < kn; j++) {
            if skeep[j] == 0u {
                continue;
            }
            var s = 0.0;
            for (var d = 0u; d < HEAD_DIM; d++) {
                s += q[d] * sk[j * HEAD_DIM + d];
            }
            let mn = max(m, s);
            let shrink = exp(m - mn);
            let p = exp(s - mn);
            total = total * shrink + p;
            for (var d = 0u; d < HEAD_DIM; d++) {
                acc[d] = acc[d] * shrink + p * sv[j * HEAD_DIM + d];
            }
            m = mn;
        }
        workgroupBarrier();
    }
    if qb * AQ + lid < l {
        let inv = 1.0 / max(total, 1e-30);
        let o0 = (seq * l + qi) * h + head * HEAD_DIM;
        for (var d = 0u; d < HEAD_DIM; d++) {
            out[o0 + d] = acc[d] * inv;
        }
    }
}

// One sentence per workgroup: pool its token vectors (`a`, mask in `ids`) and L2-normalise
// (unless `pooling` has POOL_RAW).
@compute @workgroup_size(WG)
fn pool(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let seq = wid.x;
    let h = dims.hidden;
    let l = dims.len;
    var count = 0.0;
    for (var t = 0u; t < l; t++) {
        count += f32(ids[seq * l + t]);
    }
    let mode = dims.pooling % POOL_RAW;
    var sq = 0.0;
    for (var c = lid; c < h; c += WG) {
        var v = 0.0;
        if mode == 1u {
            v = a[seq * l * h + c];
        } else if mode == 2u {
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
            if mode == 3u {
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
    let inv = select(1.0 / max(sqrt(red[0]), 1e-12), 1.0, dims.pooling >= POOL_RAW);
    for (var c = lid; c < h; c += WG) {
        out[seq * h + c] *= inv;
    }
}
