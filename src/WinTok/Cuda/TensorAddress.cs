using System.Runtime.InteropServices;
using static TorchSharp.torch;

namespace WinTok.Cuda;

/// <summary>Where a tensor's first element lives, for handing tensors to cuBLASLt and our kernels.</summary>
internal static partial class TensorAddress
{
    /// <summary>
    /// <c>at::Tensor::data_ptr()</c> through TorchSharp's native library: storage offset included, a device address for
    /// CUDA tensors. TorchSharp's managed API only exposes it for CPU tensors.
    /// </summary>
    public static nint Of(Tensor tensor) => TensorData(tensor.Handle);

    [LibraryImport("LibTorchSharp", EntryPoint = "THSTensor_data")]
    private static partial nint TensorData(nint tensor);
}
