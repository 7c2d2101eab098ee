using System.Runtime.InteropServices;

namespace WinTok.Cuda;

/// <summary>
/// How torch's CUDA caching allocator is configured in our processes. It reads <c>PYTORCH_CUDA_ALLOC_CONF</c> from the
/// native environment once, when the process first allocates on a GPU, so this runs first thing in <c>Main</c>.
/// </summary>
public static partial class CudaAllocatorSettings
{
    private const string Variable = "PYTORCH_CUDA_ALLOC_CONF";

    /// <summary>
    /// Expandable segments unless the environment already says otherwise (<c>PYTORCH_CUDA_ALLOC_CONF</c> or
    /// <c>PYTORCH_ALLOC_CONF</c> set, even empty, is left alone). A training step's many differently sized
    /// activations fragment fixed-size segments: on the H200 the so400m training step peaked at 60.3 GB of device
    /// memory with them and at 56.8 GB with expandable segments, at the same speed (docs/benchmarks.md).
    /// .NET's <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach native code on Unix,
    /// hence libc's <c>setenv</c>.
    /// </summary>
    public static void PreferExpandableSegments()
    {
        if (!OperatingSystem.IsLinux()) return;
        if (Environment.GetEnvironmentVariable(Variable) is not null || Environment.GetEnvironmentVariable("PYTORCH_ALLOC_CONF") is not null) return;
        _ = SetEnvironment(Variable, "expandable_segments:True", overwrite: 0);
    }

    [LibraryImport("libc", EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnvironment(string name, string value, int overwrite);
}
