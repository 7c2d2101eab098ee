using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Cuda;

/// <summary>
/// LayerNorm over the last dimension of a bf16 CUDA tensor in one pass, one warp per row with the row held in
/// registers. torch's vectorized LayerNorm kernel reaches about 1.5 TB/s on these rows (1,152 bf16 values) on the
/// H100, under half of the memory bandwidth, and the encoder runs two per layer. Statistics in fp32 with a two-pass
/// variance over the registers, then ((x - mean) * rstd) * weight + bias rounded to bf16 as torch does; results can
/// differ from torch's Welford statistics by float32 rounding, i.e. at most one bf16 step in rare elements.
/// </summary>
internal sealed unsafe class FusedLayerNorm
{
    private const int MaxWidth = 2048; // 8 vectors of 8 values per lane
    private const int RowsPerBlock = 4;

    private const string Source = CudaKernels.Bf16Prelude + """
        // Exact (erf) GELU of the bf16-rounded norm output, as torch applies F.gelu to the bf16 tensor layer_norm made.
        __device__ __forceinline__ float exact_gelu(float x) {
            x = __uint_as_float(bf16(x) << 16);
            return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));
        }
        #define CHUNKS 8
        extern "C" __global__ void __launch_bounds__(128) layer_norm_bf16(
            const uint4* __restrict__ x, const uint4* __restrict__ weight, const uint4* __restrict__ bias,
            uint4* __restrict__ y, int rows, int vectors, float width, float eps, int gelu)
        {
            const int row = blockIdx.x * 4 + (threadIdx.x >> 5);
            const int lane = threadIdx.x & 31;
            if (row >= rows) return;
            const uint4* in = x + (size_t)row * vectors;
            float v[CHUNKS][8];
            float sum = 0.f;
            #pragma unroll
            for (int i = 0; i < CHUNKS; i++) {
                const int c = lane + i * 32;
                if (c < vectors) {
                    const uint4 p = in[c];
                    v[i][0] = lo(p.x); v[i][1] = hi(p.x); v[i][2] = lo(p.y); v[i][3] = hi(p.y);
                    v[i][4] = lo(p.z); v[i][5] = hi(p.z); v[i][6] = lo(p.w); v[i][7] = hi(p.w);
                    #pragma unroll
                    for (int j = 0; j < 8; j++) sum += v[i][j];
                }
            }
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            const float mean = sum / width;
            float squares = 0.f;
            #pragma unroll
            for (int i = 0; i < CHUNKS; i++) {
                if (lane + i * 32 < vectors) {
                    #pragma unroll
                    for (int j = 0; j < 8; j++) { const float d = v[i][j] - mean; squares += d * d; }
                }
            }
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) squares += __shfl_xor_sync(0xffffffffu, squares, o);
            const float rstd = rsqrtf(squares / width + eps);
            uint4* out = y + (size_t)row * vectors;
            #pragma unroll
            for (int i = 0; i < CHUNKS; i++) {
                const int c = lane + i * 32;
                if (c < vectors) {
                    const uint4 g = weight[c], b = bias[c];
                    const unsigned int gw[4] = {g.x, g.y, g.z, g.w}, bw[4] = {b.x, b.y, b.z, b.w};
                    unsigned int r[4];
                    #pragma unroll
                    for (int j = 0; j < 4; j++) {
                        float a = ((v[i][2 * j] - mean) * rstd) * lo(gw[j]) + lo(bw[j]);
                        float e = ((v[i][2 * j + 1] - mean) * rstd) * hi(gw[j]) + hi(bw[j]);
                        if (gelu) { a = exact_gelu(a); e = exact_gelu(e); }
                        r[j] = bf16(a) | (bf16(e) << 16);
                    }
                    out[c] = make_uint4(r[0], r[1], r[2], r[3]);
                }
            }
        }
        """;

    private static readonly Lazy<FusedLayerNorm?> SharedInstance = new(Create);
    private readonly nint kernel;

    private FusedLayerNorm(nint kernel) => this.kernel = kernel;

    /// <summary>The compiled kernel, or null without CUDA, driver or NVRTC (see <see cref="UnavailableReason"/>).</summary>
    public static FusedLayerNorm? Shared => SharedInstance.Value;

    public static string? UnavailableReason { get; private set; }

    /// <summary>LayerNorm over the last dimension of <paramref name="x"/>; with <paramref name="gelu"/>, exact GELU after it.</summary>
    public bool TryForward(Tensor x, Tensor weight, Tensor bias, double eps, out Tensor output, bool gelu = false)
    {
        output = null!;
        var width = x.shape[^1];
        if (x.device_type != DeviceType.CUDA || x.device_index > 0 || is_grad_enabled()
            || x.dtype != ScalarType.BFloat16 || weight.dtype != ScalarType.BFloat16 || bias.dtype != ScalarType.BFloat16
            || width % 8 != 0 || width > MaxWidth || weight.numel() != width || bias.numel() != width
            || !x.is_contiguous() || !weight.is_contiguous() || !bias.is_contiguous() || x.numel() == 0)
            return false;
        var y = empty(x.shape, x.dtype, x.device);
        nint px = TensorAddress.Of(x), pw = TensorAddress.Of(weight),
            pb = TensorAddress.Of(bias), py = TensorAddress.Of(y);
        if (((px | pw | pb | py) & 15) != 0)
        {
            y.Dispose();
            return false;
        }
        var rows = (int)(x.numel() / width);
        var vectors = (int)(width / 8);
        var widthF = (float)width;
        var epsF = (float)eps;
        var withGelu = gelu ? 1 : 0;
        void** arguments = stackalloc void*[] { &px, &pw, &pb, &py, &rows, &vectors, &widthF, &epsF, &withGelu };
        CudaKernels.Launch(kernel, (uint)((rows + RowsPerBlock - 1) / RowsPerBlock), 1, RowsPerBlock * 32, arguments);
        output = y;
        return true;
    }

    private static FusedLayerNorm? Create()
    {
        var kernels = CudaKernels.TryLoad(Source, "wintok_layer_norm.cu", out var reason, "layer_norm_bf16");
        UnavailableReason = reason;
        return kernels is null ? null : new FusedLayerNorm(kernels["layer_norm_bf16"]);
    }
}
