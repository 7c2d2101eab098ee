using System.Runtime.InteropServices;
using WinTok.Cuda;

namespace WinTok.Tests.Inference;

public sealed class CudaAllocatorSettingsTests
{
    [Fact]
    public void PreferExpandableSegments_SetsTheNativeVariableUnlessTheUserAlreadyDid()
    {
        var before = Environment.GetEnvironmentVariable("PYTORCH_CUDA_ALLOC_CONF") ?? Environment.GetEnvironmentVariable("PYTORCH_ALLOC_CONF");

        CudaAllocatorSettings.PreferExpandableSegments();

        var native = Marshal.PtrToStringUTF8(GetEnvironment("PYTORCH_CUDA_ALLOC_CONF"));
        if (before is null) Assert.Equal("expandable_segments:True", native);
        else Assert.Equal(Environment.GetEnvironmentVariable("PYTORCH_CUDA_ALLOC_CONF"), native);
    }

    [DllImport("libc", EntryPoint = "getenv")]
    private static extern nint GetEnvironment([MarshalAs(UnmanagedType.LPUTF8Str)] string name);
}
