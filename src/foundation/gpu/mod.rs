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

/// A compiled compute pipeline and its (shader-derived) bind group layout.
#[derive(Debug)]
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}
