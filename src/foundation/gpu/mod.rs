//! A GPU device toolkit that knows no model: opening an adapter (Vulkan, Metal, DX12 through
//! wgpu) with error scopes that turn validation and out-of-memory errors into values, a cache of
//! compiled compute pipelines, buffers, read-back, row matrices resident on the device
//! ([`DeviceRows`]), and the two linear-algebra kernels everything else builds on ([`linear`]:
//! the Gram matrix and the projection). The mixture kernels (`backend::gpu`) and the WGSL
//! sentence encoder (`encoders::gpu`) sit on top of it, side by side.

mod context;
pub mod linear;
mod rows;

pub use context::{AdapterPolicy, AdapterSummary, Gpu, list_adapters};
pub use rows::DeviceRows;

/// The host mirror of a WGSL uniform struct, for the layout test: its WGSL name, its size, and
/// the byte offset of every named field (padding left out). Built by `uniform_layout!` from
/// the `#[repr(C)]` struct itself, so a field that moves on either side fails the test.
#[derive(Debug, Clone, Copy)]
pub struct UniformLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, usize)],
}

/// `uniform_layout!(Dims { n, p, .. })`: the [`UniformLayout`] of the host struct `Dims`, with
/// the offsets of the fields named (which must be its fields, or it does not compile).
macro_rules! uniform_layout {
    ($ty:ident { $($field:ident),* $(,)? }) => {
        $crate::foundation::gpu::UniformLayout {
            name: stringify!($ty),
            size: ::std::mem::size_of::<$ty>(),
            fields: &[$((stringify!($field), ::std::mem::offset_of!($ty, $field))),*],
        }
    };
}
pub(crate) use uniform_layout;

/// A WGSL entry point and its CPU reference (a function of the same name and inputs), for the
/// guard test that every entry point has one. Built by `reference!`, which only compiles when
/// the function exists.
#[derive(Debug, Clone, Copy)]
pub struct Reference {
    /// File stem under `shaders/`.
    pub shader: &'static str,
    /// The entry point, which is also the reference's name.
    pub entry: &'static str,
    /// The reference's module path.
    pub module: &'static str,
}

/// `reference!("gram", crate::foundation::reference, column_sums)`: the [`Reference`] of entry
/// point `column_sums` of `shaders/gram.wgsl`, whose CPU reference is
/// `crate::foundation::reference::column_sums` (which must exist, or this does not compile).
macro_rules! reference {
    ($shader:literal, $module:path, $entry:ident) => {{
        use $module as reference_module;
        let _ = reference_module::$entry;
        $crate::foundation::gpu::Reference { shader: $shader, entry: stringify!($entry), module: stringify!($module) }
    }};
}
pub(crate) use reference;

/// A compiled compute pipeline and its (shader-derived) bind group layout.
#[derive(Debug)]
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}
