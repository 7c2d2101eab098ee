using System.Runtime.InteropServices;

namespace WinTok.Cuda;

/// <summary>
/// The slice of NVIDIA's cuBLASLt C API that <see cref="CublasLtLinear"/> uses, bound at run time to the copy of the
/// library that libtorch has already loaded (see <see cref="CudaLibraries"/>).
/// Enum values are those of cublasLt.h / library_types.h.
/// </summary>
internal static unsafe partial class CublasLt
{
    private const string Library = CudaLibraries.CublasLt;

    public const int ComputeF32 = 68;            // CUBLAS_COMPUTE_32F: fp32 accumulation, as torch uses for bf16/fp16
    public const int DataF32 = 0;                // CUDA_R_32F
    public const int DataF16 = 2;                // CUDA_R_16F
    public const int DataBF16 = 14;              // CUDA_R_16BF
    public const int OpN = 0, OpT = 1;           // cublasOperation_t

    public const int DescTransA = 3, DescTransB = 4, DescEpilogue = 7, DescBiasPointer = 8; // cublasLtMatmulDescAttributes_t
    public const int EpilogueDefault = 1, EpilogueBias = 4, EpilogueGelu = 32, EpilogueGeluBias = 36; // cublasLtEpilogue_t
    public const int PrefMaxWorkspaceBytes = 1, PrefReductionSchemeMask = 3; // cublasLtMatmulPreferenceAttributes_t
    public const int PrefMinAlignmentA = 5, PrefMinAlignmentB = 6, PrefMinAlignmentC = 7, PrefMinAlignmentD = 8;

    [StructLayout(LayoutKind.Sequential)]
    public struct MatmulAlgo { public fixed ulong Data[8]; }

    [StructLayout(LayoutKind.Sequential)]
    public struct HeuristicResult
    {
        public MatmulAlgo Algo;
        public nuint WorkspaceSize;
        public int State;
        public float WavesCount;
        public fixed int Reserved[4];
    }

    static CublasLt() => CudaLibraries.Register();

    [LibraryImport(Library)] public static partial int cublasLtCreate(out nint handle);
    [LibraryImport(Library)] public static partial nint cublasLtGetStatusString(int status);
    [LibraryImport(Library)] public static partial nuint cublasLtGetVersion();
    [LibraryImport(Library)] public static partial int cublasLtMatmulDescCreate(out nint desc, int computeType, int scaleType);
    [LibraryImport(Library)] public static partial int cublasLtMatmulDescDestroy(nint desc);
    [LibraryImport(Library)] public static partial int cublasLtMatmulDescSetAttribute(nint desc, int attribute, void* value, nuint size);
    [LibraryImport(Library)] public static partial int cublasLtMatrixLayoutCreate(out nint layout, int type, ulong rows, ulong cols, long ld);
    [LibraryImport(Library)] public static partial int cublasLtMatrixLayoutDestroy(nint layout);
    [LibraryImport(Library)] public static partial int cublasLtMatmulPreferenceCreate(out nint preference);
    [LibraryImport(Library)] public static partial int cublasLtMatmulPreferenceDestroy(nint preference);
    [LibraryImport(Library)] public static partial int cublasLtMatmulPreferenceSetAttribute(nint preference, int attribute, void* value, nuint size);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmulAlgoGetHeuristic(nint handle, nint desc, nint a, nint b, nint c, nint d,
        nint preference, int requested, HeuristicResult* results, out int returned);

    [LibraryImport(Library)]
    public static partial int cublasLtMatmul(nint handle, nint desc, float* alpha, nint a, nint aLayout, nint b, nint bLayout,
        float* beta, nint c, nint cLayout, nint d, nint dLayout, MatmulAlgo* algo, nint workspace, nuint workspaceSize, nint stream);

    public static void Check(int status, string call)
    {
        if (status == 0) return;
        var text = Marshal.PtrToStringAnsi(cublasLtGetStatusString(status)) ?? "unknown";
        throw new InvalidOperationException($"cuBLASLt {call} failed: {text} ({status})");
    }

    public static void Set<T>(nint desc, int attribute, T value) where T : unmanaged =>
        Check(cublasLtMatmulDescSetAttribute(desc, attribute, &value, (nuint)sizeof(T)), $"MatmulDescSetAttribute({attribute})");

    public static void SetPreference<T>(nint preference, int attribute, T value) where T : unmanaged =>
        Check(cublasLtMatmulPreferenceSetAttribute(preference, attribute, &value, (nuint)sizeof(T)), $"MatmulPreferenceSetAttribute({attribute})");

    /// <summary>True when the library can be bound in this process (a CUDA libtorch is loaded).</summary>
    public static bool IsAvailable
    {
        get
        {
            CudaLibraries.Register();
            return CudaLibraries.Has(Library);
        }
    }
}
