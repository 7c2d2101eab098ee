using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using WinTok.Checkpoints;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

/// <summary>Every broken file fails with <see cref="CheckpointFormatException"/> naming the file and the problem.</summary>
public sealed class BadCheckpointTests
{
    [Fact]
    public void Read_WhenFileIsEmpty_FailsNamingTheFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("empty.pth");
        File.WriteAllBytes(path, []);

        var error = AssertFails(path);

        Assert.Contains("empty", error.Problem);
    }

    [Fact]
    public void Read_WhenPthIsTruncatedInHalf_FailsNamingTheFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("half.pth");
        byte[] whole = File.ReadAllBytes(TinyPth);
        File.WriteAllBytes(path, whole[..(whole.Length / 2)]);

        var error = AssertFails(path);

        Assert.Contains("truncated", error.Problem);
    }

    [Fact]
    public void Read_WhenSafetensorsIsCutInTheHeader_FailsNamingTheFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("cut-header.safetensors");
        File.WriteAllBytes(path, File.ReadAllBytes(TinySafetensors)[..100]);

        var error = AssertFails(path);

        Assert.Contains("header claims", error.Problem);
    }

    [Fact]
    public void Read_WhenSafetensorsIsCutInTheData_FailsNamingTheTensorAndTruncation()
    {
        using var folder = NewTempFolder();
        string path = folder.File("cut-data.safetensors");
        byte[] whole = File.ReadAllBytes(TinySafetensors);
        File.WriteAllBytes(path, whole[..(whole.Length - 1000)]);

        var error = AssertFails(path);

        Assert.Contains("truncated", error.Problem);
        Assert.Contains("safetensors entry '", error.Problem);
    }

    [Fact]
    public void Read_WhenFileIsGarbage_FailsNamingTheFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("garbage.bin");
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);

        var error = AssertFails(path);

        Assert.Contains("not a safetensors file", error.Problem);
    }

    [Fact]
    public void Read_WhenAPthFileIsGarbage_SaysItIsNoTorchCheckpointRatherThanABrokenSafetensorsHeader()
    {
        using var folder = NewTempFolder();
        string path = folder.File("garbage.pth");
        File.WriteAllText(path, "garbage bytes here");

        var error = AssertFails(path);

        Assert.Contains("not a torch.save checkpoint", error.Problem);
        Assert.DoesNotContain("header claims", error.Problem);
    }

    [Fact]
    public void Read_WhenHeaderLengthIsBeyondTheFileSize_FailsNamingTheLength()
    {
        using var folder = NewTempFolder();
        string path = folder.File("long-header.safetensors");
        var bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, 1000);
        File.WriteAllBytes(path, bytes);

        var error = AssertFails(path);

        Assert.Contains("claims 1000 bytes", error.Problem);
    }

    [Fact]
    public void Read_WhenHeaderIsNotJson_FailsSayingSo()
    {
        using var folder = NewTempFolder();
        string path = folder.File("not-json.safetensors");
        WriteSafetensors(path, "{\"a\": {\"dtype\": \"F32\", oops");

        var error = AssertFails(path);

        Assert.Contains("not valid JSON", error.Problem);
    }

    [Theory]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 4]}}", "needs 8")]
    [InlineData("{\"a\": {\"dtype\": \"C64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", "dtype C64")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}", "shape")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", "data_offsets")]
    [InlineData("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}", "begin <= end")]
    [InlineData("{\"__metadata__\": {\"k\": 1}}", "not a string")]
    [InlineData("[1, 2]", "not a JSON object")]
    public void Read_WhenHeaderEntriesAreInvalid_FailsNamingTheProblem(string header, string expected)
    {
        using var folder = NewTempFolder();
        string path = folder.File("bad-entry.safetensors");
        WriteSafetensors(path, header, dataBytes: 8);

        var error = AssertFails(path);

        Assert.Contains(expected, error.Problem);
    }

    [Fact]
    public void Read_WhenZipHasNoDataPkl_FailsSayingItIsNotATorchCheckpoint()
    {
        var error = AssertFails(DataFile("no_data_pkl.pth"));

        Assert.Contains("no data.pkl", error.Problem);
    }

    [Fact]
    public void Read_WhenPickleReferencesAMissingStorage_FailsNamingTheEntryAndTensor()
    {
        var error = AssertFails(DataFile("missing_storage.pth"));

        Assert.Contains("'missing_storage/data/1'", error.Problem);
        Assert.Contains("tensor 'b'", error.Problem);
    }

    [Fact]
    public void Read_WhenATensorUsesAnUnsupportedGlobal_FailsNamingTheGlobal()
    {
        var error = AssertFails(DataFile("unsupported_global.pth"));

        Assert.Contains("torch._utils._rebuild_qtensor", error.Problem);
        Assert.Contains("'q'", error.Problem);
    }

    [Fact]
    public void Read_WhenThePickleIsCutShort_FailsSayingItIsTruncated()
    {
        using var folder = NewTempFolder();
        string path = folder.File("short-pickle.pth");
        RewriteZip(DataFile("views.pth"), path, (name, data) => name.EndsWith("data.pkl", StringComparison.Ordinal) ? data[..(data.Length / 2)] : data);

        var error = AssertFails(path);

        Assert.Contains("truncated", error.Problem);
    }

    [Fact]
    public void Read_WhenAStorageEntryIsShorterThanItsTensor_FailsNamingTheEntry()
    {
        using var folder = NewTempFolder();
        string path = folder.File("short-storage.pth");
        RewriteZip(DataFile("views.pth"), path, (name, data) => name == "views/data/0" ? data[..4] : data);

        var error = AssertFails(path);

        Assert.Contains("'views/data/0' has 4 bytes", error.Problem);
    }

    [Fact]
    public void Read_WhenTheZipIsNotATorchCheckpoint_FailsSayingWhatItFound()
    {
        using var folder = NewTempFolder();
        string path = folder.File("other.zip");
        using (var zip = ZipFile.Open(path, ZipArchiveMode.Create))
        {
            using var writer = new StreamWriter(zip.CreateEntry("readme.txt").Open());
            writer.Write("hello");
        }

        var error = AssertFails(path);

        Assert.Contains("no data.pkl", error.Problem);
    }

    [Fact]
    public void Read_WhenThePickleIsAListNotADict_FailsSayingWhatItFound()
    {
        using var folder = NewTempFolder();
        string path = folder.File("list.pth");
        // PROTO 2, EMPTY_LIST, STOP
        RewriteZip(DataFile("views.pth"), path, (name, data) => name.EndsWith("data.pkl", StringComparison.Ordinal) ? [0x80, 2, (byte)']', (byte)'.'] : data);

        var error = AssertFails(path);

        Assert.Contains("is a list, expected a dict", error.Problem);
    }

    [Fact]
    public void Read_WhenThePickleHasNoStateDict_FailsListingTheTopLevelKeys()
    {
        using var folder = NewTempFolder();
        string path = folder.File("no-weights.pth");
        // {'epoch': 3}: PROTO 2, EMPTY_DICT, SHORT_BINUNICODE 'epoch', BININT1 3, SETITEM, STOP
        byte[] pickle = [0x80, 2, (byte)'}', 0x8c, 5, .. "epoch"u8, (byte)'K', 3, (byte)'s', (byte)'.'];
        RewriteZip(DataFile("views.pth"), path, (name, data) => name.EndsWith("data.pkl", StringComparison.Ordinal) ? pickle : data);

        var error = AssertFails(path);

        Assert.Contains("[epoch]", error.Problem);
    }

    [Fact]
    public void Read_WhenThePickleHasAnUnknownOpcode_FailsNamingTheOpcodeAndOffset()
    {
        using var folder = NewTempFolder();
        string path = folder.File("opcode.pth");
        RewriteZip(DataFile("views.pth"), path, (name, data) => name.EndsWith("data.pkl", StringComparison.Ordinal) ? [0x80, 2, 0xff] : data);

        var error = AssertFails(path);

        Assert.Contains("opcode 0xff at byte 2", error.Problem);
    }

    [Fact]
    public void Read_WhenTheFileIsALegacyNonZipTorchSave_FailsSayingSo()
    {
        using var folder = NewTempFolder();
        string path = folder.File("legacy.pth");
        // Legacy torch.save starts with a pickled magic number: PROTO 2, LONG1 ...
        File.WriteAllBytes(path, [0x80, 2, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, (byte)'.']);

        var error = AssertFails(path);

        Assert.Contains("legacy (non-zip) torch.save", error.Problem);
    }

    [Fact]
    public void Read_WhenTheFileDoesNotExist_ThrowsFileNotFound()
    {
        Assert.Throws<FileNotFoundException>(() => CheckpointFile.Read(Path.Combine(Data, "does-not-exist.pth")));
    }

    [Fact]
    public void Read_WhenAnyPickleByteIsCorrupted_FailsOnlyWithCheckpointFormatException()
    {
        // A flipped byte may still parse (a changed letter in a name), but must never crash with another exception.
        using var folder = NewTempFolder();
        byte[] original = ReadEntry(DataFile("views.pth"), "views/data.pkl");
        for (int at = 0; at < original.Length; at += 3)
        {
            string path = folder.File($"corrupt-{at}.pth");
            RewriteZip(DataFile("views.pth"), path, (name, data) =>
            {
                if (name != "views/data.pkl")
                {
                    return data;
                }
                var copy = (byte[])data.Clone();
                copy[at] ^= 0x5a;
                return copy;
            });
            try
            {
                CheckpointFile.Read(path).Dispose();
            }
            catch (CheckpointFormatException)
            {
                // expected for most positions
            }
            File.Delete(path);
        }
    }

    [Fact]
    public void Read_WhenAnySafetensorsHeaderByteIsCorrupted_FailsOnlyWithCheckpointFormatException()
    {
        using var folder = NewTempFolder();
        string original = folder.File("original.safetensors");
        using (var scope = TorchSharp.torch.NewDisposeScope())
        {
            var tensors = new Dictionary<string, TorchSharp.torch.Tensor>
            {
                ["a"] = SafetensorsTests.Sample(TorchSharp.torch.ScalarType.Float32, [2, 3]),
                ["b"] = SafetensorsTests.Sample(TorchSharp.torch.ScalarType.Int64, [4]),
            };
            Safetensors.Write(original, tensors, new Dictionary<string, string> { ["k"] = "v" });
        }
        byte[] bytes = File.ReadAllBytes(original);
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string path = folder.File("corrupt.safetensors");
        for (int at = 0; at < headerEnd; at++)
        {
            var copy = (byte[])bytes.Clone();
            copy[at] ^= 0x5a;
            File.WriteAllBytes(path, copy);
            try
            {
                CheckpointFile.Read(path).Dispose();
            }
            catch (CheckpointFormatException)
            {
                // expected for most positions
            }
        }
    }

    [Fact]
    public void Read_WhenThePthIsTruncatedAnywhere_FailsOnlyWithCheckpointFormatException()
    {
        using var folder = NewTempFolder();
        byte[] whole = File.ReadAllBytes(DataFile("views.pth"));
        string path = folder.File("cut.pth");
        for (int length = 1; length < whole.Length; length += 61)
        {
            File.WriteAllBytes(path, whole[..length]);
            Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path).Dispose());
        }
    }

    private static CheckpointFormatException AssertFails(string path)
    {
        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(path).Dispose());
        Assert.Equal(path, error.FilePath);
        Assert.Contains(path, error.Message);
        return error;
    }

    private static void WriteSafetensors(string path, string header, int dataBytes = 0)
    {
        byte[] json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }

    private static byte[] ReadEntry(string zipPath, string name)
    {
        using var zip = ZipFile.OpenRead(zipPath);
        using var stream = zip.GetEntry(name)!.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>Copies a zip entry by entry (stored, like torch.save), letting <paramref name="edit"/> change contents.</summary>
    internal static void RewriteZip(string source, string target, Func<string, byte[], byte[]> edit)
    {
        using var input = ZipFile.OpenRead(source);
        using var output = ZipFile.Open(target, ZipArchiveMode.Create);
        foreach (var entry in input.Entries)
        {
            using var read = entry.Open();
            using var buffer = new MemoryStream();
            read.CopyTo(buffer);
            using var write = output.CreateEntry(entry.FullName, CompressionLevel.NoCompression).Open();
            write.Write(edit(entry.FullName, buffer.ToArray()));
        }
    }
}
