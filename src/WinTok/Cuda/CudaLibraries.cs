using System.Runtime.InteropServices;

namespace WinTok.Cuda;

/// <summary>
/// Finds the CUDA libraries our P/Invoke declarations name (cuBLASLt, the driver, NVRTC) in this process, preferring
/// the copies libtorch already loaded, so that everything shares one CUDA installation and one GPU context. PyTorch's
/// pip wheels keep them together in nvidia/cu13/lib; TorchSharp's CUDA packages put them beside libtorch_cuda.so.
/// One resolver serves the whole assembly (.NET allows one per assembly).
/// </summary>
internal static class CudaLibraries
{
    public const string CublasLt = "wintok-cublaslt"; // placeholder names that the resolver maps to real files
    public const string Driver = "wintok-cuda";
    public const string Nvrtc = "wintok-nvrtc";

    private static readonly Lazy<nint> CublasLtHandle = new(() => Load("libcublasLt.so", ["libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"]));
    private static readonly Lazy<nint> DriverHandle = new(() => Load("libcuda.so", ["libcuda.so.1", "libcuda.so"]));
    private static readonly Lazy<nint> NvrtcHandle = new(() => Load("libnvrtc", ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"]));
    private static int registered;

    /// <summary>Installs the resolver once; every class with CUDA imports calls this from its static constructor.</summary>
    public static void Register()
    {
        if (Interlocked.Exchange(ref registered, 1) == 0)
            NativeLibrary.SetDllImportResolver(typeof(CudaLibraries).Assembly, Resolve);
    }

    public static bool Has(string library) => Handle(library) != 0;

    private static nint Handle(string library) => library switch
    {
        CublasLt => CublasLtHandle.Value,
        Driver => DriverHandle.Value,
        Nvrtc => NvrtcHandle.Value,
        _ => 0,
    };

    private static nint Resolve(string name, System.Reflection.Assembly assembly, DllImportSearchPath? path) =>
        Handle(name); // 0 for any other name: default probing (LibTorchSharp, already loaded by TorchSharp)

    private static nint Load(string prefix, string[] sonames)
    {
        // dlopen by soname returns a copy the process already has, or finds one on the loader's path.
        foreach (var soname in sonames)
            if (NativeLibrary.TryLoad(soname, out var handle)) return handle;
        // Otherwise look beside the CUDA libraries libtorch loaded (NVRTC is only loaded by torch on demand, and
        // TorchSharp's packages give it a hashed name such as libnvrtc-1ea278b5.so.12).
        foreach (var folder in LoadedCudaFolders())
            foreach (var file in Directory.EnumerateFiles(folder, prefix + "*.so*").Order(StringComparer.Ordinal))
                if (!file.Contains("builtins", StringComparison.Ordinal) && NativeLibrary.TryLoad(file, out var handle))
                    return handle;
        return 0;
    }

    private static IEnumerable<string> LoadedCudaFolders()
    {
        const string maps = "/proc/self/maps";
        if (!File.Exists(maps)) return [];
        return File.ReadLines(maps)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries).LastOrDefault())
            .Where(file => file is not null && file.StartsWith('/')
                && (file.Contains("libcublas", StringComparison.Ordinal) || file.Contains("libtorch_cuda", StringComparison.Ordinal)))
            .Select(file => Path.GetDirectoryName(file)!)
            .Distinct()
            .ToArray();
    }
}
