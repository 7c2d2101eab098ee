using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Cuda;

/// <summary>
/// A 3x3 depthwise convolution (padding 1, stride 1 or 2) with its bias and an optional exact GELU, on a bf16 CUDA map
/// in NHWC order, as one kernel. UniTok's MBConv blocks run it on their widest maps (4x the stage width): cuDNN's
/// depthwise kernel, torch's bias add and its GELU are three passes over those maps, this is one. Accumulates in
/// float32 like cuDNN, rounds the sum to bf16 once and applies GELU to that bf16 value, as torch's GELU reads the
/// bf16 tensor; results can differ from torch's by one bf16 step where cuDNN's summation order rounds otherwise.
/// </summary>
internal sealed unsafe class FusedDepthwiseConv
{
    private const int Threads = 256;

    private const string Source = CudaKernels.Bf16Prelude + """
        __device__ __forceinline__ float finish(float x, int gelu) {
            x = __uint_as_float(bf16(x) << 16);
            return gelu ? 0.5f * x * (1.f + erff(x * 0.70710678118654752f)) : x;
        }
        // One thread per output pixel and 8 channels (one 16-byte vector); a warp covers neighbouring channel vectors
        // of one pixel, so every load is coalesced. weight is (9, C): tap-major, so a tap's 8 channels are one vector.
        extern "C" __global__ void __launch_bounds__(256) depthwise3x3_nhwc_bf16(
            const uint4* __restrict__ x, const uint4* __restrict__ weight, const uint4* __restrict__ bias,
            uint4* __restrict__ y, int height, int width, int outHeight, int outWidth, int vectors, long long total,
            int stride, int gelu)
        {
            const long long index = (long long)blockIdx.x * blockDim.x + threadIdx.x;
            if (index >= total) return;
            const int v = (int)(index % vectors);
            long long pixel = index / vectors;
            const int ox = (int)(pixel % outWidth); pixel /= outWidth;
            const int oy = (int)(pixel % outHeight);
            const long long image = pixel / outHeight;
            const uint4 b = bias[v];
            float acc[8] = { lo(b.x), hi(b.x), lo(b.y), hi(b.y), lo(b.z), hi(b.z), lo(b.w), hi(b.w) };
            #pragma unroll
            for (int ky = 0; ky < 3; ky++) {
                const int iy = oy * stride - 1 + ky;
                if (iy < 0 || iy >= height) continue;
                #pragma unroll
                for (int kx = 0; kx < 3; kx++) {
                    const int ix = ox * stride - 1 + kx;
                    if (ix < 0 || ix >= width) continue;
                    const uint4 p = x[((image * height + iy) * width + ix) * vectors + v];
                    const uint4 k = weight[(ky * 3 + kx) * vectors + v];
                    acc[0] += lo(p.x) * lo(k.x); acc[1] += hi(p.x) * hi(k.x);
                    acc[2] += lo(p.y) * lo(k.y); acc[3] += hi(p.y) * hi(k.y);
                    acc[4] += lo(p.z) * lo(k.z); acc[5] += hi(p.z) * hi(k.z);
                    acc[6] += lo(p.w) * lo(k.w); acc[7] += hi(p.w) * hi(k.w);
                }
            }
            unsigned int r[4];
            #pragma unroll
            for (int j = 0; j < 4; j++)
                r[j] = bf16(finish(acc[2 * j], gelu)) | (bf16(finish(acc[2 * j + 1], gelu)) << 16);
            y[index] = make_uint4(r[0], r[1], r[2], r[3]);
        }
        """;

    private static readonly Lazy<FusedDepthwiseConv?> SharedInstance = new(Create);
    private readonly nint kernel;

    private FusedDepthwiseConv(nint kernel) => this.kernel = kernel;

    /// <summary>The compiled kernel, or null without CUDA, driver or NVRTC (see <see cref="UnavailableReason"/>).</summary>
    public static FusedDepthwiseConv? Shared => SharedInstance.Value;

    public static string? UnavailableReason { get; private set; }

    /// <summary>
    /// The weights as the kernel reads them: (C, 1, 3, 3) to (9, C), tap-major. Made once when a model is prepared.
    /// </summary>
    public static Tensor TapMajor(Tensor weight) => weight.reshape(weight.shape[0], 9).t().contiguous();

    /// <summary>
    /// <paramref name="x"/> (N, H, W, C) bf16 contiguous to (N, H', W', C): the depthwise convolution with
    /// <paramref name="tapMajorWeight"/> (9, C) and <paramref name="bias"/> (C), then GELU when asked. False, and no
    /// work done, for anything else (another dtype or device, autograd on, C not a multiple of 8, misaligned memory).
    /// </summary>
    public bool TryForward(Tensor x, Tensor tapMajorWeight, Tensor bias, int stride, bool gelu, out Tensor output)
    {
        output = null!;
        if (x.device_type != DeviceType.CUDA || x.device_index > 0 || is_grad_enabled() || x.dim() != 4
            || stride is not (1 or 2)
            || x.dtype != ScalarType.BFloat16 || tapMajorWeight.dtype != ScalarType.BFloat16 || bias.dtype != ScalarType.BFloat16
            || !x.is_contiguous() || !tapMajorWeight.is_contiguous() || !bias.is_contiguous() || x.numel() == 0)
            return false;
        var (n, height, width, channels) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        if (channels % 8 != 0 || tapMajorWeight.shape[0] != 9 || tapMajorWeight.shape[1] != channels || bias.numel() != channels)
            return false;
        var (outHeight, outWidth) = ((height - 1) / stride + 1, (width - 1) / stride + 1);
        var y = empty([n, outHeight, outWidth, channels], x.dtype, x.device);
        nint px = TensorAddress.Of(x), pw = TensorAddress.Of(tapMajorWeight), pb = TensorAddress.Of(bias), py = TensorAddress.Of(y);
        if (((px | pw | pb | py) & 15) != 0)
        {
            y.Dispose();
            return false;
        }
        int h = (int)height, w = (int)width, oh = (int)outHeight, ow = (int)outWidth, vectors = (int)(channels / 8);
        long total = n * outHeight * outWidth * vectors;
        int withGelu = gelu ? 1 : 0;
        void** arguments = stackalloc void*[] { &px, &pw, &pb, &py, &h, &w, &oh, &ow, &vectors, &total, &stride, &withGelu };
        CudaKernels.Launch(kernel, (uint)((total + Threads - 1) / Threads), 1, Threads, arguments);
        output = y;
        return true;
    }

    private static FusedDepthwiseConv? Create()
    {
        var kernels = CudaKernels.TryLoad(Source, "wintok_depthwise_conv.cu", out var reason, "depthwise3x3_nhwc_bf16");
        UnavailableReason = reason;
        return kernels is null ? null : new FusedDepthwiseConv(kernels["depthwise3x3_nhwc_bf16"]);
    }
}
