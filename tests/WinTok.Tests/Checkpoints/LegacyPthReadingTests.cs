using WinTok.Checkpoints;
using WinTok.TestSupport;
using static TorchSharp.torch;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

/// <summary>
/// Legacy (pre-1.6, non-zip) torch.save files: the generated ones of Data/generate_legacy.py and the real lpips v0.1
/// head files (tests/fixtures/lpips-v0.1), the format of torchvision's and pytorch-fid's weights.
/// </summary>
public sealed class LegacyPthReadingTests
{
    private static string LpipsHeads(string name) =>
        TestFixtures.File("lpips-v0.1", name);

    [Fact]
    public void Read_LegacyFile_GivesEveryViewDtypeAndValueInFileOrder()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("legacy.pth"));

        Assert.Equal(CheckpointFileFormat.PyTorch, checkpoint.Format);
        Assert.Empty(checkpoint.Args);
        PthReadingTests.AssertMatchesExpected("legacy", checkpoint, "legacy_expected.json");
    }

    [Fact]
    public void Read_LegacyFileOfTorchBefore04_ReadsRebuildTensorAndCudaStorages()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("legacy_v1_cuda.pth"));

        PthReadingTests.AssertMatchesExpected("legacy_v1_cuda", checkpoint, "legacy_expected.json");
    }

    [Theory]
    [InlineData("alex.pth", new long[] { 64, 192, 384, 256, 256 })]
    [InlineData("vgg.pth", new long[] { 64, 128, 256, 512, 512 })]
    public void Read_RealLpipsHeadFiles_GiveFiveNonNegativeHeads(string file, long[] channels)
    {
        using var checkpoint = CheckpointFile.Read(LpipsHeads(file));

        Assert.Equal(Enumerable.Range(0, 5).Select(k => $"lin{k}.model.1.weight"), checkpoint.StateDict.Keys);
        for (int k = 0; k < 5; k++)
        {
            var head = checkpoint.StateDict[$"lin{k}.model.1.weight"];
            Assert.Equal([1, channels[k], 1, 1], head.shape);
            Assert.Equal(ScalarType.Float32, head.dtype);
            // LPIPS heads are trained with their weights clamped at zero, and none is all zero.
            Assert.True(head.ge(0).all().item<bool>() && head.sum().item<float>() > 0, $"{file} lin{k}");
        }
    }

    [Fact]
    public void Read_WhenALegacyFileIsCutInItsStorages_FailsSayingTruncated()
    {
        using var folder = NewTempFolder();
        string path = folder.File("cut.pth");
        byte[] whole = File.ReadAllBytes(LpipsHeads("alex.pth"));
        File.WriteAllBytes(path, whole[..^100]);

        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path));

        Assert.Equal(path, error.FilePath);
        Assert.Contains("legacy (non-zip) torch.save", error.Problem);
        Assert.Contains("truncated", error.Problem);
    }

    [Fact]
    public void Read_WhenALegacyFileIsCutInItsPickle_FailsSayingTruncated()
    {
        using var folder = NewTempFolder();
        string path = folder.File("cut-pickle.pth");
        File.WriteAllBytes(path, File.ReadAllBytes(DataFile("legacy.pth"))[..200]);

        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path));

        Assert.Contains("legacy (non-zip) torch.save", error.Problem);
        Assert.Contains("truncated", error.Problem);
    }
}
