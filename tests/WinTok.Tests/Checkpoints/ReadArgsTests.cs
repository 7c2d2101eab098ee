using System.IO.Compression;
using TorchSharp;
using WinTok.Checkpoints;
using static TorchSharp.torch;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

/// <summary><see cref="CheckpointFile.ReadArgs"/> learns a checkpoint's configuration without reading a tensor.</summary>
public sealed class ReadArgsTests
{
    [Theory]
    [InlineData("views.pth")]
    [InlineData("views_protocol4.pth")]
    public void ReadArgs_GeneratedCheckpoint_EqualsTheArgsOfAFullRead(string file)
    {
        using var checkpoint = CheckpointFile.Read(DataFile(file));

        var args = CheckpointFile.ReadArgs(DataFile(file));

        Assert.Equal(checkpoint.Args.Keys, args.Keys);
        Assert.Equal("torch.bfloat16", args["dtype"]);
        Assert.Equal(checkpoint.Args["betas"], args["betas"]);
        Assert.Equal(checkpoint.Args["big"], args["big"]);
    }

    [Fact]
    public void ReadArgs_TinyPth_EqualsTheArgsOfAFullRead()
    {
        using var checkpoint = CheckpointFile.Read(TinyPth);

        var args = CheckpointFile.ReadArgs(TinyPth);

        Assert.Equal(checkpoint.Args.Keys, args.Keys);
        foreach (var (key, value) in checkpoint.Args)
        {
            Assert.Equal(value is PythonObject ? value.ToString() : value, args[key] is PythonObject ? args[key]!.ToString() : args[key]);
        }
    }

    [Fact]
    public void ReadArgs_PthWhoseStoragesAreEmptied_StillYieldsTheArgs()
    {
        using var folder = NewTempFolder();
        string path = folder.File("no-storage-bytes.pth");
        // Every storage entry keeps its name but loses its bytes: reading any tensor would fail.
        BadCheckpointTests.RewriteZip(DataFile("views.pth"), path, (name, data) => name.Contains("/data/", StringComparison.Ordinal) ? [] : data);

        var args = CheckpointFile.ReadArgs(path);

        Assert.Equal(4L, args["num_latent_tokens"]);
        Assert.Equal("/mnt/somewhere/siglip2-so400m-patch16-256", args["model"]);
        Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path).Dispose());
    }

    [Fact]
    public void ReadArgs_PthWithoutAnyStorageEntry_StillYieldsTheArgs()
    {
        using var folder = NewTempFolder();
        string source = folder.File("source.pth");
        string path = folder.File("pickle-only.pth");
        File.Copy(DataFile("views.pth"), source);
        using (var input = ZipFile.OpenRead(source))
        using (var output = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            foreach (var entry in input.Entries.Where(entry => !entry.FullName.Contains("/data/", StringComparison.Ordinal)))
            {
                using var read = entry.Open();
                using var write = output.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
                read.CopyTo(write);
            }
        }

        var args = CheckpointFile.ReadArgs(path);

        Assert.Equal(16384L, args["vocab_size"]);
    }

    [Fact]
    public void ReadArgs_BareStateDict_IsEmpty()
    {
        Assert.Empty(CheckpointFile.ReadArgs(DataFile("parameters.pth")));
    }

    [Fact]
    public void ReadArgs_SafetensorsWithArgsAndTruncatedData_ReadsOnlyTheHeader()
    {
        using var folder = NewTempFolder();
        string path = folder.File("args.safetensors");
        using (var scope = NewDisposeScope())
        {
            var args = new Dictionary<string, object?> { ["vocab_size"] = 32768L, ["model"] = "siglip2", ["lr"] = 1e-4 };
            CheckpointFile.Write(path, args, new Dictionary<string, Tensor> { ["w"] = ones(64, 64) });
        }
        byte[] whole = File.ReadAllBytes(path);
        File.WriteAllBytes(path, whole[..(whole.Length - 4096)]);

        var read = CheckpointFile.ReadArgs(path);

        Assert.Equal(32768L, read["vocab_size"]);
        Assert.Equal("siglip2", read["model"]);
        Assert.Equal(1e-4, read["lr"]);
        Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path).Dispose());
    }

    [Fact]
    public void ReadArgs_SafetensorsWithoutArgsMetadata_IsEmpty()
    {
        Assert.Empty(CheckpointFile.ReadArgs(TinySafetensors));
    }

    [Fact]
    public void ReadArgs_WhenArgsMetadataIsNotJson_FailsNamingTheFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("bad-args.safetensors");
        using (var scope = NewDisposeScope())
        {
            Safetensors.Write(path, new Dictionary<string, Tensor> { ["w"] = ones(2) }, new Dictionary<string, string> { [CheckpointFile.ArgsMetadataKey] = "[1," });
        }

        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.ReadArgs(path));

        Assert.Equal(path, error.FilePath);
        Assert.Contains(CheckpointFile.ArgsMetadataKey, error.Problem);
    }

    [Fact]
    public void ReadArgs_WhenFileIsGarbage_FailsNamingTheFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("garbage.bin");
        var bytes = new byte[4096];
        new Random(11).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);

        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.ReadArgs(path));

        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void ReadArgs_WhenTheFileDoesNotExist_ThrowsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => CheckpointFile.ReadArgs(Path.Combine(Data, "does-not-exist.pth")));
    }
}
