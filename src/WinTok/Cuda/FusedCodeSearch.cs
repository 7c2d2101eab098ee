using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Cuda;

/// <summary>
/// The quantizer's nearest-code search in one kernel: normalise each code-width slice of a feature row, take its dot
/// product with every normalised code of its codebook, keep the first maximum. torch does this as a GEMM whose
/// (rows x 4,096) float32 similarity matrix is written out and read back by argmax, 1 GB of memory traffic per batch
/// of 128 for four codebooks; here the codes sit in shared memory and only the ids leave the chip. float32 throughout,
/// each dot product a chain of FMAs over the code width as cuBLAS accumulates it, F.normalize's sqrt, clamp and
/// division; ids can differ from torch's only where two codes tie to float32 rounding.
/// </summary>
internal sealed unsafe class FusedCodeSearch
{
    private const int MaxWidth = 32;
    private const int Threads = 256;

    private const string Source = """
        #define TILE 8192
        extern "C" __global__ void __launch_bounds__(256) nearest_codes(
            const float* __restrict__ features, const float* __restrict__ codes, long long* __restrict__ ids,
            int rows, int positions, int books, int vocab)
        {
            __shared__ float tile[TILE];
            const int book = blockIdx.y;
            const int row = blockIdx.x * blockDim.x + threadIdx.x;
            const bool active = row < rows;
            float f[WIDTH];
            if (active) {
                const float* src = features + ((size_t)row * books + book) * WIDTH;
                float squares = 0.f;
                #pragma unroll
                for (int j = 0; j < WIDTH; j++) { f[j] = src[j]; squares += f[j] * f[j]; }
                const float denominator = fmaxf(sqrtf(squares), 1e-12f); // F.normalize: x / max(||x||, eps)
                #pragma unroll
                for (int j = 0; j < WIDTH; j++) f[j] = f[j] / denominator;
            }
            float best = -__int_as_float(0x7f800000);
            int index = 0;
            const float* own = codes + (size_t)book * vocab * WIDTH;
            const int perTile = TILE / WIDTH;
            for (int start = 0; start < vocab; start += perTile) {
                const int count = min(perTile, vocab - start);
                __syncthreads();
                for (int i = threadIdx.x; i < count * WIDTH; i += blockDim.x) tile[i] = own[(size_t)start * WIDTH + i];
                __syncthreads();
                if (active) {
                    for (int c = 0; c < count; c++) {
                        float dot = 0.f;
                        #pragma unroll
                        for (int j = 0; j < WIDTH; j++) dot = fmaf(f[j], tile[c * WIDTH + j], dot);
                        if (dot > best) { best = dot; index = start + c; } // strictly greater: the first maximum wins
                    }
                }
            }
            if (active) ids[((size_t)(row / positions) * books + book) * positions + row % positions] = index;
        }
        """;

    private static readonly Lazy<FusedCodeSearch?> SharedInstance = new(() => cuda.is_available() ? new FusedCodeSearch() : null);
    private readonly ConcurrentDictionary<int, Lazy<nint>> kernels = new(); // one compilation per code width

    /// <summary>The process-wide instance (compiled kernels per code width), or null without CUDA.</summary>
    public static FusedCodeSearch? Shared => SharedInstance.Value;

    public static string? UnavailableReason { get; private set; }

    /// <summary>Features (B, L, K*w) float32 and normalised codes (K, V, w) float32 to ids (B, K, L) int64.</summary>
    public bool TryNearest(Tensor features, Tensor codes, out Tensor ids)
    {
        ids = null!;
        if (features.device_type != DeviceType.CUDA || features.device_index > 0 || is_grad_enabled()
            || features.dtype != ScalarType.Float32 || codes.dtype != ScalarType.Float32 || features.dim() != 3 || codes.dim() != 3
            || !features.is_contiguous() || !codes.is_contiguous() || features.numel() == 0)
            return false;
        var (books, vocab, width) = ((int)codes.shape[0], (int)codes.shape[1], (int)codes.shape[2]);
        if (width > MaxWidth || features.shape[2] != books * width) return false;
        var kernel = kernels.GetOrAdd(width, w => new Lazy<nint>(() => Compile(w))).Value;
        if (kernel == 0) return false;

        var (b, positions) = (features.shape[0], (int)features.shape[1]);
        var rows = (int)(b * positions);
        var output = empty([b, books, positions], ScalarType.Int64, features.device);
        nint pf = TensorAddress.Of(features), pc = TensorAddress.Of(codes), pi = TensorAddress.Of(output);
        void** arguments = stackalloc void*[] { &pf, &pc, &pi, &rows, &positions, &books, &vocab };
        CudaKernels.Launch(kernel, (uint)((rows + Threads - 1) / Threads), (uint)books, Threads, arguments);
        ids = output;
        return true;
    }

    private static nint Compile(int width)
    {
        try
        {
            return CudaKernels.Load($"#define WIDTH {width}\n" + Source, $"wintok_nearest_codes_{width}.cu", "nearest_codes")["nearest_codes"];
        }
        catch (InvalidOperationException e)
        {
            UnavailableReason = e.Message;
            return 0;
        }
    }
}
