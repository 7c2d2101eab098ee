using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace WinTok.Cuda;

/// <summary>
/// <c>y = x W^T + b</c>, optionally followed by tanh-GELU and/or plus a residual, as one cuBLASLt call on CUDA for
/// bfloat16/float16 inference. Why not torch's own linear: TorchSharp's <c>nn.functional.linear</c> is libtorch's C++
/// frontend function, which for 3-D inputs runs matmul and then a separate bias add (Python's <c>at::linear</c> fuses
/// the bias); and even the fused <c>addmm</c> leaves the GELU and the residual add to separate kernels that re-read the
/// GEMM's output. Here the bias, the GELU and the residual are applied in the GEMM's epilogue on the fp32 accumulator,
/// so each is one pass less over memory and one rounding to bf16 less.
/// For each new problem shape the heuristic's candidate kernels (without split-K, so all accumulate each output in the
/// same order) are timed once and the fastest is kept: the choice changes speed, not results.
/// </summary>
internal sealed unsafe class CublasLtLinear
{
    private const int WorkspaceBytes = 32 << 20; // what torch gives cuBLAS on Hopper
    private const int MaxCandidates = 8;

    private static readonly Lazy<CublasLtLinear?> SharedInstance = new(Create);
    private readonly nint handle;
    private readonly Tensor workspace;
    private readonly nint workspacePointer;
    private readonly Dictionary<PlanKey, Plan> plans = [];
    private readonly Lock gate = new();

    private CublasLtLinear(nint handle, Tensor workspace)
    {
        this.handle = handle;
        this.workspace = workspace;
        workspacePointer = TensorAddress.Of(workspace);
    }

    /// <summary>The process-wide instance for CUDA device 0, or null when no CUDA libtorch is loaded.</summary>
    /// <remarks>One per process: it holds a cuBLASLt handle and a workspace; which layers use it is the model's choice (<see cref="WinTok.Model.InferenceKernels"/>).</remarks>
    public static CublasLtLinear? Shared => SharedInstance.Value;

    /// <summary>Kernels chosen so far, one line per problem shape, for benchmark reports.</summary>
    public IReadOnlyList<string> DescribePlans()
    {
        lock (gate) return plans.Select(p => p.Value.Description).ToArray();
    }

    /// <summary>
    /// Runs the fused layer when the inputs allow it: CUDA device 0, one dtype throughout, no autograd, contiguous
    /// rows. Otherwise returns false and the caller computes the same thing with torch.
    /// </summary>
    public bool TryForward(Tensor x, Tensor weight, Tensor? bias, Tensor? residual, bool gelu, out Tensor output)
    {
        output = null!;
        if (!Supports(x, weight, bias, residual)) return false;
        long k = weight.shape[1], n = weight.shape[0], m = x.numel() / k;
        var outputShape = x.shape.ToArray();
        outputShape[^1] = n;
        if (residual is not null && !residual.shape.SequenceEqual(outputShape)) return false;

        var y = empty(outputShape, x.dtype, x.device);
        var pointers = new Pointers(
            TensorAddress.Of(x), TensorAddress.Of(weight),
            bias is null ? 0 : TensorAddress.Of(bias),
            residual is null ? 0 : TensorAddress.Of(residual), TensorAddress.Of(y));
        var epilogue = (gelu, bias is not null) switch
        {
            (false, false) => CublasLt.EpilogueDefault,
            (false, true) => CublasLt.EpilogueBias,
            (true, false) => CublasLt.EpilogueGelu,
            (true, true) => CublasLt.EpilogueGeluBias,
        };
        var key = new PlanKey(m, n, k, x.dtype, epilogue, residual is not null, pointers.Alignment);
        lock (gate)
        {
            if (!plans.TryGetValue(key, out var plan))
            {
                plan = Plan.Create(handle, key, pointers, workspacePointer);
                plans[key] = plan;
            }
            plan.Run(handle, pointers, workspacePointer);
        }
        output = y;
        return true;
    }

    private static bool Supports(Tensor x, Tensor weight, Tensor? bias, Tensor? residual)
    {
        if (x.device_type != DeviceType.CUDA || x.device_index > 0 || is_grad_enabled()) return false;
        var dtype = x.dtype;
        // float32 stays with torch: its SGEMM kernels were as fast as any cuBLASLt candidate for the projections.
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float16)) return false;
        if (weight.dtype != dtype || weight.dim() != 2 || weight.device_type != DeviceType.CUDA || x.shape[^1] != weight.shape[1]) return false;
        if (bias is not null && (bias.dtype != dtype || bias.dim() != 1 || bias.shape[0] != weight.shape[0] || !bias.is_contiguous())) return false;
        if (residual is not null && (residual.dtype != dtype || !residual.is_contiguous())) return false;
        return x.is_contiguous() && weight.is_contiguous() && x.numel() > 0
            && x.numel() / weight.shape[1] <= int.MaxValue && weight.shape[0] <= int.MaxValue && weight.shape[1] <= int.MaxValue;
    }

    private static CublasLtLinear? Create()
    {
        if (!cuda.is_available() || !CublasLt.IsAvailable) return null;
        CublasLt.Check(CublasLt.cublasLtCreate(out var handle), "Create");
        using var scope = NewDisposeScope();
        var workspace = empty([WorkspaceBytes], ScalarType.Byte, CUDA).DetachFromDisposeScope();
        return new CublasLtLinear(handle, workspace);
    }

    private readonly record struct PlanKey(long M, long N, long K, ScalarType Dtype, int Epilogue, bool Residual, int Alignment);

    private readonly record struct Pointers(nint X, nint Weight, nint Bias, nint Residual, nint Output)
    {
        /// <summary>The largest power of two up to 256 that divides every address (cuBLASLt kernels assume one).</summary>
        public int Alignment
        {
            get
            {
                var all = (ulong)(X | Weight | Output | Bias | Residual) | 256;
                return (int)(all & (~all + 1));
            }
        }
    }

    /// <summary>Descriptors and the chosen kernel of one problem shape. Row-major y (M, N) is column-major y^T (N, M) = W x^T.</summary>
    private sealed class Plan
    {
        private nint desc, weightLayout, inputLayout, outputLayout;
        private CublasLt.MatmulAlgo algo;
        private nuint workspaceSize;
        private bool residual;

        public string Description { get; private set; } = "";

        public static Plan Create(nint handle, PlanKey key, Pointers pointers, nint workspace)
        {
            var type = key.Dtype == ScalarType.BFloat16 ? CublasLt.DataBF16 : CublasLt.DataF16;
            var plan = new Plan { residual = key.Residual };
            CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(out plan.desc, CublasLt.ComputeF32, CublasLt.DataF32), "MatmulDescCreate");
            CublasLt.Set(plan.desc, CublasLt.DescTransA, CublasLt.OpT);
            CublasLt.Set(plan.desc, CublasLt.DescTransB, CublasLt.OpN);
            CublasLt.Set(plan.desc, CublasLt.DescEpilogue, (uint)key.Epilogue);
            if (pointers.Bias != 0) CublasLt.Set(plan.desc, CublasLt.DescBiasPointer, pointers.Bias);
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out plan.weightLayout, type, (ulong)key.K, (ulong)key.N, key.K), "MatrixLayoutCreate");
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out plan.inputLayout, type, (ulong)key.K, (ulong)key.M, key.K), "MatrixLayoutCreate");
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(out plan.outputLayout, type, (ulong)key.N, (ulong)key.M, key.N), "MatrixLayoutCreate");

            var found = stackalloc CublasLt.HeuristicResult[MaxCandidates];
            // Split-K kernels are left out first: they sum partial products in another order, so picking one by timing
            // could change tokens from run to run. Only a shape with no other kernel falls back to them.
            var count = plan.FindCandidates(handle, key, found, withoutSplitK: true);
            if (count == 0) count = plan.FindCandidates(handle, key, found, withoutSplitK: false);
            if (count == 0) throw new InvalidOperationException($"cuBLASLt has no kernel for {key}");

            // Time every candidate on the real operands; the output is rewritten by the caller's run afterwards.
            var best = (Index: 0, Ms: double.MaxValue);
            var timings = new List<string>();
            for (var i = 0; i < count && count > 1; i++)
            {
                if (found[i].State != 0) continue;
                plan.algo = found[i].Algo;
                plan.workspaceSize = found[i].WorkspaceSize;
                plan.Run(handle, pointers, workspace);
                cuda.synchronize();
                var clock = Stopwatch.StartNew();
                for (var r = 0; r < 3; r++) plan.Run(handle, pointers, workspace);
                cuda.synchronize();
                var ms = clock.Elapsed.TotalMilliseconds / 3;
                timings.Add(ms.ToString("F3", CultureInfo.InvariantCulture));
                if (ms < best.Ms) best = (i, ms);
            }
            plan.algo = found[best.Index].Algo;
            plan.workspaceSize = found[best.Index].WorkspaceSize;
            plan.Description = string.Create(CultureInfo.InvariantCulture,
                $"M={key.M} N={key.N} K={key.K} {key.Dtype} epilogue={key.Epilogue} residual={key.Residual}: candidate {best.Index} of {count} [{string.Join(' ', timings)}] ms");
            return plan;
        }

        private int FindCandidates(nint handle, PlanKey key, CublasLt.HeuristicResult* found, bool withoutSplitK)
        {
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(out var preference), "MatmulPreferenceCreate");
            try
            {
                CublasLt.SetPreference(preference, CublasLt.PrefMaxWorkspaceBytes, (ulong)WorkspaceBytes);
                if (withoutSplitK) CublasLt.SetPreference(preference, CublasLt.PrefReductionSchemeMask, 0u);
                foreach (var attribute in new[] { CublasLt.PrefMinAlignmentA, CublasLt.PrefMinAlignmentB, CublasLt.PrefMinAlignmentC, CublasLt.PrefMinAlignmentD })
                    CublasLt.SetPreference(preference, attribute, (uint)key.Alignment);
                CublasLt.Check(CublasLt.cublasLtMatmulAlgoGetHeuristic(handle, desc, weightLayout, inputLayout,
                    outputLayout, outputLayout, preference, MaxCandidates, found, out var count), "MatmulAlgoGetHeuristic");
                return count;
            }
            finally
            {
                CublasLt.cublasLtMatmulPreferenceDestroy(preference);
            }
        }

        public void Run(nint handle, Pointers pointers, nint workspace)
        {
            if (pointers.Bias != 0) CublasLt.Set(desc, CublasLt.DescBiasPointer, pointers.Bias);
            float alpha = 1, beta = residual ? 1 : 0;
            var c = residual ? pointers.Residual : pointers.Output;
            fixed (CublasLt.MatmulAlgo* chosen = &algo)
                CublasLt.Check(CublasLt.cublasLtMatmul(handle, desc, &alpha, pointers.Weight, weightLayout, pointers.X, inputLayout,
                    &beta, c, outputLayout, pointers.Output, outputLayout, chosen, workspace, workspaceSize, stream: 0), "Matmul");
        }
    }
}
