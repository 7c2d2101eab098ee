using System.Runtime.InteropServices;
using System.Text;

namespace WinTok.Cuda;

/// <summary>
/// Compiles CUDA C source with NVRTC and loads it into the primary context libtorch uses, through the CUDA driver API:
/// the way to run a handful of kernels of our own without a native build step. Every failure (no driver, no NVRTC, a
/// driver older than the compiler) surfaces as an exception at load time, so callers can fall back to torch.
/// </summary>
internal static unsafe partial class CudaKernels
{
    static CudaKernels() => CudaLibraries.Register();

    /// <summary>
    /// bf16 helpers our kernels share, prepended to their sources: the low and high bf16 halves of a 32-bit word as
    /// floats, and float to bf16 bits with round-to-nearest-even and NaN kept quiet (c10::BFloat16's rule).
    /// </summary>
    public const string Bf16Prelude = """
        __device__ __forceinline__ float lo(unsigned int w) { return __uint_as_float(w << 16); }
        __device__ __forceinline__ float hi(unsigned int w) { return __uint_as_float(w & 0xffff0000u); }
        __device__ __forceinline__ unsigned int bf16(float f) {
            unsigned int u = __float_as_uint(f);
            if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0u;
            return (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
        }

        """;

    /// <summary>
    /// <see cref="Load"/>, or null with the reason when there is no CUDA device or the driver or NVRTC cannot be
    /// loaded (each kernel class keeps that reason for its Describe line).
    /// </summary>
    public static IReadOnlyDictionary<string, nint>? TryLoad(string source, string name, out string? unavailableReason, params string[] kernels)
    {
        unavailableReason = null;
        if (!TorchSharp.torch.cuda.is_available()) return null;
        try
        {
            return Load(source, name, kernels);
        }
        catch (InvalidOperationException e)
        {
            unavailableReason = e.Message;
            return null;
        }
    }

    /// <summary>Compiles <paramref name="source"/> for the current device and returns its named kernels.</summary>
    public static IReadOnlyDictionary<string, nint> Load(string source, string name, params string[] kernels)
    {
        CudaLibraries.Register();
        if (!CudaLibraries.Has(CudaLibraries.Driver)) throw new InvalidOperationException("libcuda (the NVIDIA driver) is not loadable");
        if (!CudaLibraries.Has(CudaLibraries.Nvrtc)) throw new InvalidOperationException("NVRTC is not loadable beside libtorch's CUDA libraries");
        EnsureContext();
        Check(cuCtxGetDevice(out var device), "cuCtxGetDevice");
        Check(cuDeviceGetAttribute(out var major, 75, device), "cuDeviceGetAttribute(major)");
        Check(cuDeviceGetAttribute(out var minor, 76, device), "cuDeviceGetAttribute(minor)");
        var ptx = Compile(source, name, $"--gpu-architecture=compute_{major}{minor}");
        nint module;
        fixed (byte* image = ptx) Check(cuModuleLoadData(out module, image), "cuModuleLoadData");
        return kernels.ToDictionary(k => k, k =>
        {
            Check(cuModuleGetFunction(out var function, module, k), $"cuModuleGetFunction({k})");
            return function;
        });
    }

    /// <summary>Launches on the legacy default stream, the one TorchSharp's tensors run on.</summary>
    public static void Launch(nint function, uint gridX, uint gridY, uint threads, void** arguments)
    {
        EnsureContext();
        Check(cuLaunchKernel(function, gridX, gridY, 1, threads, 1, 1, 0, 0, arguments, null), "cuLaunchKernel");
    }

    /// <summary>The CUDA runtime makes the primary context current on threads it has run on; make sure ours has it.</summary>
    private static void EnsureContext()
    {
        Check(cuCtxGetCurrent(out var context), "cuCtxGetCurrent");
        if (context != 0) return;
        Check(cuInit(0), "cuInit");
        Check(cuDevicePrimaryCtxRetain(out context, 0), "cuDevicePrimaryCtxRetain");
        Check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
    }

    private static byte[] Compile(string source, string name, params string[] options)
    {
        CheckNvrtc(nvrtcCreateProgram(out var program, source, name, 0, null, null), "nvrtcCreateProgram");
        try
        {
            var optionBytes = options.Select(o => Marshal.StringToHGlobalAnsi(o)).ToArray();
            int status;
            try
            {
                fixed (nint* pointers = optionBytes) status = nvrtcCompileProgram(program, options.Length, (byte**)pointers);
            }
            finally
            {
                foreach (var o in optionBytes) Marshal.FreeHGlobal(o);
            }
            if (status != 0)
            {
                nvrtcGetProgramLogSize(program, out var logSize);
                var log = new byte[logSize];
                fixed (byte* l = log) nvrtcGetProgramLog(program, l);
                throw new InvalidOperationException($"NVRTC could not compile {name}: {Encoding.UTF8.GetString(log).TrimEnd('\0')}");
            }
            CheckNvrtc(nvrtcGetPTXSize(program, out var size), "nvrtcGetPTXSize");
            var ptx = new byte[size];
            fixed (byte* p = ptx) CheckNvrtc(nvrtcGetPTX(program, p), "nvrtcGetPTX");
            return ptx;
        }
        finally
        {
            nvrtcDestroyProgram(ref program);
        }
    }

    private static void Check(int result, string call)
    {
        if (result == 0) return;
        var text = cuGetErrorString(result, out var message) == 0 ? Marshal.PtrToStringAnsi(message) : null;
        throw new InvalidOperationException($"CUDA driver {call} failed: {text ?? "error"} ({result})");
    }

    private static void CheckNvrtc(int result, string call)
    {
        if (result != 0) throw new InvalidOperationException($"{call} failed: {Marshal.PtrToStringAnsi(nvrtcGetErrorString(result))} ({result})");
    }

    /// <summary>Records an event on the legacy default stream (no timing), for <see cref="CudaEvent"/>.</summary>
    internal static nint RecordEvent()
    {
        EnsureContext();
        Check(cuEventCreate(out var handle, 2 /* CU_EVENT_DISABLE_TIMING */), "cuEventCreate");
        Check(cuEventRecord(handle, 0), "cuEventRecord");
        return handle;
    }

    internal static void SynchronizeEvent(nint handle) => Check(cuEventSynchronize(handle), "cuEventSynchronize");

    /// <summary>True once the work before the event has finished; never blocks.</summary>
    internal static bool QueryEvent(nint handle)
    {
        var result = cuEventQuery(handle);
        if (result == 600 /* CUDA_ERROR_NOT_READY */) return false;
        Check(result, "cuEventQuery");
        return true;
    }

    internal static void DestroyEvent(nint handle) => Check(cuEventDestroy_v2(handle), "cuEventDestroy");

    [LibraryImport(CudaLibraries.Driver)] private static partial int cuEventCreate(out nint handle, uint flags);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuEventRecord(nint handle, nint stream);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuEventSynchronize(nint handle);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuEventQuery(nint handle);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuEventDestroy_v2(nint handle);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuInit(uint flags);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuCtxGetCurrent(out nint context);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuCtxSetCurrent(nint context);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuCtxGetDevice(out int device);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuDevicePrimaryCtxRetain(out nint context, int device);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuDeviceGetAttribute(out int value, int attribute, int device);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuGetErrorString(int error, out nint message);
    [LibraryImport(CudaLibraries.Driver)] private static partial int cuModuleLoadData(out nint module, byte* image);

    [LibraryImport(CudaLibraries.Driver, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int cuModuleGetFunction(out nint function, nint module, string name);

    [LibraryImport(CudaLibraries.Driver)]
    private static partial int cuLaunchKernel(nint function, uint gridX, uint gridY, uint gridZ, uint blockX, uint blockY, uint blockZ,
        uint sharedBytes, nint stream, void** parameters, void** extra);

    [LibraryImport(CudaLibraries.Nvrtc, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int nvrtcCreateProgram(out nint program, string source, string name, int headers, byte** headerSources, byte** headerNames);

    [LibraryImport(CudaLibraries.Nvrtc)] private static partial int nvrtcCompileProgram(nint program, int count, byte** options);
    [LibraryImport(CudaLibraries.Nvrtc)] private static partial int nvrtcGetPTXSize(nint program, out nuint size);
    [LibraryImport(CudaLibraries.Nvrtc)] private static partial int nvrtcGetPTX(nint program, byte* ptx);
    [LibraryImport(CudaLibraries.Nvrtc)] private static partial int nvrtcGetProgramLogSize(nint program, out nuint size);
    [LibraryImport(CudaLibraries.Nvrtc)] private static partial int nvrtcGetProgramLog(nint program, byte* log);
    [LibraryImport(CudaLibraries.Nvrtc)] private static partial int nvrtcDestroyProgram(ref nint program);
    [LibraryImport(CudaLibraries.Nvrtc)] private static partial nint nvrtcGetErrorString(int result);
}

/// <summary>
/// A point in the default stream's work: everything queued before <see cref="TryRecord"/> has finished once
/// <see cref="Synchronize"/> returns, while work queued after it may still run (unlike torch.cuda.synchronize()).
/// </summary>
internal sealed class CudaEvent : IDisposable
{
    private nint handle;

    private CudaEvent(nint handle) => this.handle = handle;

    /// <summary>An event behind the work queued so far, or null where the driver API cannot be bound.</summary>
    public static CudaEvent? TryRecord()
    {
        CudaLibraries.Register();
        return CudaLibraries.Has(CudaLibraries.Driver) ? new CudaEvent(CudaKernels.RecordEvent()) : null;
    }

    public void Synchronize()
    {
        if (handle != 0) CudaKernels.SynchronizeEvent(handle);
    }

    public bool IsComplete => handle == 0 || CudaKernels.QueryEvent(handle);

    public void Dispose()
    {
        if (handle == 0) return;
        CudaKernels.DestroyEvent(handle);
        handle = 0;
    }
}
