using static TorchSharp.torch;

namespace WinTok.Tests;

public sealed class TorchLoadsTests
{
    [Fact]
    public void NativeLibrary_OnThisMachine_LoadsAndComputes()
    {
        using var a = ones(2, 3);
        using var sum = a.sum();
        Assert.Equal(6f, sum.item<float>());
    }
}
