//! The one dense product the CPU kernels use, C ← A B or C ← C + A B, on ndarray views.
//!
//! It forwards to the `gemm` crate (the engine under faer), which selects AVX-512, AVX2+FMA or
//! NEON kernels at run time and handles the skinny shapes of the E- and M-step (n = K columns)
//! markedly better than a generic GEMM. This is the only `unsafe` in segmix.

use ndarray::{ArrayView2, ArrayViewMut2};

/// Element types the product runs on.
pub trait Scalar: 'static + Copy {
    const ZERO: Self;
    const ONE: Self;
}
impl Scalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}
impl Scalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

/// C = A B (`accumulate == false`) or C += A B (`accumulate == true`), single-threaded (the
/// callers already run one block per thread). Views may have any strides.
///
/// # Panics
/// When the shapes do not agree.
pub fn matmul<T: Scalar>(c: &mut ArrayViewMut2<T>, a: &ArrayView2<T>, b: &ArrayView2<T>, accumulate: bool) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul: inner dimensions differ");
    assert_eq!(c.dim(), (m, n), "matmul: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(T::ZERO);
        }
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the three views are valid for their whole (checked) shapes with the strides
    // ndarray reports; `c` is borrowed mutably so it cannot alias `a` or `b`; `gemm` reads
    // exactly m×k, k×n and (when `read_dst`) m×n elements at those strides and writes m×n.
    // gemm computes dst = alpha·dst + beta·lhs·rhs.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            if accumulate { T::ONE } else { T::ZERO },
            T::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn matches_naive_for_strided_and_transposed_views() {
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f64 * 0.3 - 2.0);
        let b = Array2::from_shape_fn((7, 3), |(i, j)| (i + 2 * j) as f64 * 0.7 - 1.0);
        let mut c = Array2::from_elem((5, 3), 1.0);
        let at = a.t();
        matmul(&mut c.view_mut(), &at, &b.view(), true);
        for i in 0..5 {
            for j in 0..3 {
                let want: f64 = 1.0 + (0..7).map(|t| a[[t, i]] * b[[t, j]]).sum::<f64>();
                assert!((c[[i, j]] - want).abs() < 1e-12);
            }
        }
        let mut d = Array2::from_elem((5, 3), 9.0);
        matmul(&mut d.view_mut(), &at, &b.view(), false);
        assert!((d[[0, 0]] - (c[[0, 0]] - 1.0)).abs() < 1e-12);
    }
}
