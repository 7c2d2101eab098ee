using TorchSharp;
using WinTok.TestSupport;
using static TorchSharp.torch;

namespace WinTok.Tests.Checkpoints;

/// <summary>Locates the reference fixtures and this folder's generated data; temp files for bad-file tests.</summary>
internal static class CheckpointTestFiles
{
    public static string RepositoryRoot => TestFixtures.RepositoryRoot;

    /// <summary>tests/fixtures/reference: the reference network's outputs.</summary>
    public static string Reference { get; } = TestFixtures.Folder("reference");

    /// <summary>Files written by Data/generate.py.</summary>
    public static string Data { get; } = Path.Combine(RepositoryRoot, "tests", "WinTok.Tests", "Checkpoints", "Data");

    public static string TinyPth => Path.Combine(Reference, "tiny.pth");

    public static string TinySafetensors => Path.Combine(Reference, "tiny.weights.safetensors");

    public static string DataFile(string name) => Path.Combine(Data, name);

    /// <summary>A fresh path in a per-test temp folder; the folder is removed with the returned scope.</summary>
    public static TempFolder NewTempFolder() => new(Directory.CreateTempSubdirectory("wintok-checkpoints-").FullName);

    /// <summary>Raw bytes of a contiguous CPU tensor, for bit-exact comparison.</summary>
    public static byte[] Bits(Tensor tensor) => tensor.bytes.ToArray();

    public static void AssertBitIdentical(Tensor expected, Tensor actual, string name)
    {
        Assert.True(expected.dtype == actual.dtype, $"{name}: dtype {actual.dtype}, expected {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{name}: shape [{string.Join(", ", actual.shape)}], expected [{string.Join(", ", expected.shape)}]");
        Assert.True(Bits(expected).AsSpan().SequenceEqual(Bits(actual)), $"{name}: bytes differ");
    }


    internal sealed class TempFolder(string path) : IDisposable
    {
        public string Path { get; } = path;

        public string File(string name) => System.IO.Path.Combine(Path, name);

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
