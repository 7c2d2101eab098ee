using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Cuda;

/// <summary>
/// Gradient clipping and the AdamW update over every parameter of a model in two kernel launches, for float32
/// parameters on the GPU. Stepping the 843M-parameter so400m WinTok one tensor at a time costs about 9,000 small
/// launches (norms, scaling, eight AdamW ops per tensor), which took 130 ms of host time per optimizer step on the
/// H200 while the device idled; the reference's foreach AdamW batches the same arithmetic. Here a table of tensor
/// addresses goes to the device once per step and each thread block takes a chunk of one tensor.
/// The arithmetic is torch's single-tensor AdamW, op by op in float32 (see <c>Training.AdamW</c>); only the order of
/// the norm's sum differs from torch's (per-chunk partial sums, then their sum).
/// </summary>
internal sealed unsafe class FusedAdamW
{
    private const int ChunkSize = 1 << 16;
    private const int Threads = 512;

    private const string Source = """
        // table: per tensor 5 int64 (param, grad, exp_avg, exp_avg_sq addresses, numel); chunks: per block (tensor, chunk).
        extern "C" __global__ void __launch_bounds__(512) sum_squares(
            const long long* __restrict__ table, const int* __restrict__ chunks, int chunkSize, float* __restrict__ partials)
        {
            const int t = chunks[2 * blockIdx.x];
            const long long start = (long long)chunks[2 * blockIdx.x + 1] * chunkSize;
            const float* g = (const float*)table[5 * t + 1];
            const long long n = table[5 * t + 4];
            const long long end = start + chunkSize < n ? start + chunkSize : n;
            float sum = 0.f;
            for (long long i = start + threadIdx.x; i < end; i += blockDim.x) { const float v = g[i]; sum += v * v; }
            __shared__ float warps[16];
            for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = sum;
            __syncthreads();
            if (threadIdx.x < 32) {
                sum = threadIdx.x < (blockDim.x >> 5) ? warps[threadIdx.x] : 0.f;
                for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
                if (threadIdx.x == 0) partials[blockIdx.x] = sum;
            }
        }

        // scalars: per tensor (1 - lr * wd, lr / bias_correction1, sqrt(bias_correction2)). scale: the clip coefficient
        // (one float on the device) or null. torch's ops in order: p *= decay; m.lerp_(g, w); v = v * b2 + (1 - b2) g g;
        // p += -step * (m / (sqrt(v) / bc2 + eps)).
        extern "C" __global__ void __launch_bounds__(512) adamw_step(
            const long long* __restrict__ table, const float* __restrict__ scalars, const int* __restrict__ chunks,
            int chunkSize, float lerpWeight, float beta2, float oneMinusBeta2, float eps, const float* __restrict__ scale)
        {
            const int t = chunks[2 * blockIdx.x];
            const long long start = (long long)chunks[2 * blockIdx.x + 1] * chunkSize;
            float* p = (float*)table[5 * t];
            const float* g = (const float*)table[5 * t + 1];
            float* m = (float*)table[5 * t + 2];
            float* v = (float*)table[5 * t + 3];
            const long long n = table[5 * t + 4];
            const long long end = start + chunkSize < n ? start + chunkSize : n;
            const float decay = scalars[3 * t], step = scalars[3 * t + 1], bc2 = scalars[3 * t + 2];
            const float coefficient = scale ? *scale : 1.f;
            for (long long i = start + threadIdx.x; i < end; i += blockDim.x) {
                const float grad = scale ? g[i] * coefficient : g[i];
                const float param = p[i] * decay;
                float avg = m[i];
                avg = lerpWeight < 0.5f ? avg + lerpWeight * (grad - avg) : grad - (grad - avg) * (1.f - lerpWeight);
                float sq = v[i] * beta2;
                sq = sq + (oneMinusBeta2 * grad) * grad;
                const float denominator = sqrtf(sq) / bc2 + eps;
                p[i] = param + (-step) * (avg / denominator);
                m[i] = avg;
                v[i] = sq;
            }
        }
        """;

    private static readonly Lazy<FusedAdamW?> SharedInstance = new(Create);
    private readonly nint sumSquares;
    private readonly nint step;

    private FusedAdamW(IReadOnlyDictionary<string, nint> kernels) => (sumSquares, step) = (kernels["sum_squares"], kernels["adamw_step"]);

    /// <summary>The compiled kernels, or null without CUDA, driver or NVRTC (see <see cref="UnavailableReason"/>).</summary>
    public static FusedAdamW? Shared => SharedInstance.Value;

    public static string? UnavailableReason { get; private set; }

    /// <summary>One parameter's update: its tensors and torch's per-tensor scalars for this step.</summary>
    public readonly record struct Item(Tensor Parameter, Tensor Gradient, Tensor ExpAvg, Tensor ExpAvgSq, double Decay, double StepSize, double BiasCorrection2Sqrt);

    /// <summary>Whether the kernels take these tensors: float32, contiguous, on CUDA device 0, autograd off.</summary>
    public static bool Supports(Tensor tensor) =>
        tensor.device_type == DeviceType.CUDA && tensor.device_index <= 0 && tensor.dtype == ScalarType.Float32 && tensor.is_contiguous();

    /// <summary>
    /// Clips the gradients to <paramref name="maxNorm"/> (when positive) and applies one AdamW step to every item.
    /// Returns the gradients' joint 2-norm before clipping when it clipped (read back: one wait for the device).
    /// </summary>
    public float? ClipAndStep(IReadOnlyList<Item> items, double maxNorm, double beta1, double beta2, double eps)
    {
        if (items.Count == 0) return maxNorm > 0 ? 0f : null;
        using var scope = NewDisposeScope();
        var device = items[0].Parameter.device;
        var (table, scalars, chunks, blocks) = Upload(items, device);
        nint pTable = TensorAddress.Of(table), pScalars = TensorAddress.Of(scalars), pChunks = TensorAddress.Of(chunks), pScale = 0;
        var chunkSize = ChunkSize;
        float? norm = null;
        Tensor? coefficient = null;
        if (maxNorm > 0)
        {
            var partials = empty([blocks], ScalarType.Float32, device);
            var pPartials = TensorAddress.Of(partials);
            void** sumArguments = stackalloc void*[] { &pTable, &pChunks, &chunkSize, &pPartials };
            CudaKernels.Launch(sumSquares, (uint)blocks, 1, Threads, sumArguments);
            var total = partials.sum().sqrt();
            // torch's clip_grad_norm_: coefficient = max_norm / (total + 1e-6), at most 1, applied as grad * coefficient
            coefficient = (total + 1e-6).reciprocal().mul(maxNorm).clamp_max(1.0).contiguous();
            pScale = TensorAddress.Of(coefficient);
            norm = total.item<float>();
        }
        float lerpWeight = (float)(1 - beta1), b2 = (float)beta2, oneMinusB2 = (float)(1 - beta2), epsF = (float)eps;
        void** arguments = stackalloc void*[] { &pTable, &pScalars, &pChunks, &chunkSize, &lerpWeight, &b2, &oneMinusB2, &epsF, &pScale };
        CudaKernels.Launch(step, (uint)blocks, 1, Threads, arguments);
        GC.KeepAlive(coefficient);
        return norm;
    }

    /// <summary>The tables on the device (copied from pinned memory without waiting) and the number of chunks.</summary>
    private static (Tensor Table, Tensor Scalars, Tensor Chunks, int Blocks) Upload(IReadOnlyList<Item> items, Device device)
    {
        var table = new long[items.Count * 5];
        var scalars = new float[items.Count * 3];
        var chunks = new List<int>();
        for (var t = 0; t < items.Count; t++)
        {
            var item = items[t];
            var n = item.Parameter.numel();
            (table[5 * t], table[5 * t + 1], table[5 * t + 2], table[5 * t + 3], table[5 * t + 4]) =
                (TensorAddress.Of(item.Parameter), TensorAddress.Of(item.Gradient), TensorAddress.Of(item.ExpAvg), TensorAddress.Of(item.ExpAvgSq), n);
            (scalars[3 * t], scalars[3 * t + 1], scalars[3 * t + 2]) = ((float)item.Decay, (float)item.StepSize, (float)item.BiasCorrection2Sqrt);
            for (long c = 0; c * ChunkSize < n; c++)
            {
                chunks.Add(t);
                chunks.Add((int)c);
            }
        }
        static Tensor ToDevice(Tensor host, Device device)
        {
            using (host)
            using (var pinned = host.pin_memory())
                return pinned.to(device, non_blocking: true);
        }
        return (ToDevice(torch.tensor(table), device), ToDevice(torch.tensor(scalars), device),
            ToDevice(torch.tensor(chunks.ToArray()), device), chunks.Count / 2);
    }

    private static FusedAdamW? Create()
    {
        var kernels = CudaKernels.TryLoad(Source, "wintok_adamw.cu", out var reason, "sum_squares", "adamw_step");
        UnavailableReason = reason;
        return kernels is null ? null : new FusedAdamW(kernels);
    }
}
