using System.Buffers.Binary;
using System.Numerics;
using System.Text;
using System.Text.Json;
using TorchSharp;
using WinTok.Checkpoints;
using static TorchSharp.torch;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

public sealed class SafetensorsTests
{
    public static TheoryData<ScalarType> DTypes =>
    [
        ScalarType.Float32, ScalarType.Float16, ScalarType.BFloat16, ScalarType.Float64, ScalarType.Int64,
        ScalarType.Int32, ScalarType.Int16, ScalarType.Byte, ScalarType.Int8, ScalarType.Bool,
    ];

    [Theory]
    [MemberData(nameof(DTypes))]
    public void WriteThenRead_EveryDType_RoundTripsBitsAndShapesWithMetadata(ScalarType type)
    {
        using var scope = NewDisposeScope();
        using var folder = NewTempFolder();
        var tensors = new Dictionary<string, Tensor>
        {
            ["matrix"] = Sample(type, [3, 5]),
            ["scalar"] = Sample(type, []),
            ["empty"] = Sample(type, [0, 4]),
            ["odd.length"] = Sample(type, [7]),
        };
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode ✓" };

        Safetensors.Write(folder.File("t.safetensors"), tensors, metadata);
        using var checkpoint = CheckpointFile.Read(folder.File("t.safetensors"));

        Assert.Equal(tensors.Keys.Order(), checkpoint.StateDict.Keys.Order());
        foreach (var (name, tensor) in tensors)
        {
            AssertBitIdentical(tensor, checkpoint.StateDict[name], name);
        }
        Assert.Equal(metadata, checkpoint.Metadata);
    }

    [Fact]
    public void Write_MixedDTypes_OrdersDataByElementSizeThenNameAndAlignsEveryTensor()
    {
        using var scope = NewDisposeScope();
        using var folder = NewTempFolder();
        var tensors = new Dictionary<string, Tensor>
        {
            ["b.byte"] = Sample(ScalarType.Byte, [3]),
            ["a.half"] = Sample(ScalarType.Float16, [3]),
            ["z.double"] = Sample(ScalarType.Float64, [2]),
            ["c.float"] = Sample(ScalarType.Float32, [3]),
            ["a.long"] = Sample(ScalarType.Int64, [1]),
        };

        Safetensors.Write(folder.File("t.safetensors"), tensors, new Dictionary<string, string>());

        byte[] file = File.ReadAllBytes(folder.File("t.safetensors"));
        ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(file);
        Assert.Equal(0UL, headerLength % 8);
        using var header = JsonDocument.Parse(file.AsMemory(8, (int)headerLength));
        var layout = header.RootElement.EnumerateObject()
            .Select(p => (p.Name, Begin: p.Value.GetProperty("data_offsets")[0].GetInt64()))
            .OrderBy(p => p.Begin)
            .ToList();
        Assert.Equal(["a.long", "z.double", "c.float", "a.half", "b.byte"], layout.Select(p => p.Name));
        Assert.All(layout, p => Assert.Equal(0, p.Begin % TensorBytes.ElementSize(tensors[p.Name].dtype)));
        Assert.False(header.RootElement.TryGetProperty("__metadata__", out _));
    }

    [Fact]
    public void Write_NonContiguousTensor_StoresItsLogicalValues()
    {
        using var scope = NewDisposeScope();
        using var folder = NewTempFolder();
        var transposed = arange(12, ScalarType.Float32).view(3, 4).t();

        Safetensors.Write(folder.File("t.safetensors"), new Dictionary<string, Tensor> { ["t"] = transposed }, new Dictionary<string, string>());
        using var checkpoint = CheckpointFile.Read(folder.File("t.safetensors"));

        AssertBitIdentical(transposed.contiguous(), checkpoint.StateDict["t"], "t");
    }

    [Fact]
    public void Write_ThenRead_RestoresArgsFromTheWinTokMetadata()
    {
        using var scope = NewDisposeScope();
        using var folder = NewTempFolder();
        var args = new Dictionary<string, object?>
        {
            ["dtype"] = "torch.bfloat16",
            ["num_latent_tokens"] = 256L,
            ["subset_ratio"] = 1.0,
            ["lr"] = 1e-4,
            ["big"] = BigInteger.Pow(2, 70),
            ["bf16"] = true,
            ["val_data"] = null,
            ["betas"] = new object?[] { 0.9, 0.95 },
            ["nested"] = new Dictionary<string, object?> { ["a"] = 1L, ["b"] = new object?[] { null, "x" } },
        };

        CheckpointFile.Write(folder.File("c.safetensors"), args, new Dictionary<string, Tensor> { ["w"] = ones(2, 2) });
        using var checkpoint = CheckpointFile.Read(folder.File("c.safetensors"));

        Assert.Equal(args.Keys, checkpoint.Args.Keys);
        Assert.Equal("torch.bfloat16", checkpoint.Args["dtype"]);
        Assert.Equal(256L, checkpoint.Args["num_latent_tokens"]);
        Assert.Equal(1.0, Assert.IsType<double>(checkpoint.Args["subset_ratio"]));
        Assert.Equal(1e-4, checkpoint.Args["lr"]);
        Assert.Equal(BigInteger.Pow(2, 70), checkpoint.Args["big"]);
        Assert.Equal(true, checkpoint.Args["bf16"]);
        Assert.Null(checkpoint.Args["val_data"]);
        Assert.Equal([0.9, 0.95], Assert.IsAssignableFrom<IReadOnlyList<object?>>(checkpoint.Args["betas"]));
        var nested = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(checkpoint.Args["nested"]);
        Assert.Equal(1L, nested["a"]);
        Assert.Equal([null, "x"], Assert.IsAssignableFrom<IReadOnlyList<object?>>(nested["b"]));
        Assert.True(checkpoint.Metadata.ContainsKey(CheckpointFile.ArgsMetadataKey));
    }

    [Fact]
    public void Write_TinyPthAsSafetensors_IsACompleteBitIdenticalCheckpoint()
    {
        using var folder = NewTempFolder();
        using var pth = CheckpointFile.Read(TinyPth);

        CheckpointFile.Write(folder.File("tiny.safetensors"), pth.Args, pth.StateDict);
        using var converted = CheckpointFile.Read(folder.File("tiny.safetensors"));

        Assert.Equal(pth.StateDict.Keys.Order(StringComparer.Ordinal), converted.StateDict.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, tensor) in pth.StateDict)
        {
            AssertBitIdentical(tensor, converted.StateDict[name], name);
        }
        Assert.Equal(pth.Args.Keys, converted.Args.Keys);
        Assert.Equal("torch.float32", converted.Args["dtype"]);
        Assert.Equal(4L, converted.Args["num_latent_tokens"]);
        Assert.Equal(pth.Args["vq_beta"], converted.Args["vq_beta"]);
    }

    [Fact]
    public void TensorBytes_InChunksSmallerThanTheTensor_RoundTripsThroughAStream()
    {
        // Exercises the sliced path that tensors over 2 GiB take, with a 7-byte chunk.
        using var scope = NewDisposeScope();
        var source = Sample(ScalarType.Float32, [5, 3]);
        var target = empty(5, 3);
        using var stream = new MemoryStream();

        TensorBytes.Write(source, stream, chunkBytes: 7);
        stream.Position = 0;
        TensorBytes.Fill(target, stream, chunkBytes: 7);

        Assert.Equal(60, stream.Length);
        AssertBitIdentical(source, target, "chunked");
    }

    [Fact]
    public void Write_WithANameThatIsNotUtf8Safe_StillReadsBack()
    {
        using var scope = NewDisposeScope();
        using var folder = NewTempFolder();
        string name = "blocks.0.\"quoted\"\\name.ü";

        Safetensors.Write(folder.File("t.safetensors"), new Dictionary<string, Tensor> { [name] = ones(1) }, new Dictionary<string, string>());
        using var checkpoint = CheckpointFile.Read(folder.File("t.safetensors"));

        Assert.Equal([name], checkpoint.StateDict.Keys);
        Assert.Equal("{", Encoding.UTF8.GetString(File.ReadAllBytes(folder.File("t.safetensors")), 8, 1));
    }

    [Fact]
    public void Read_SafetensorsWhoseHeaderLengthStartsLikeAPickle_IsNotMistakenForALegacyTorchFile()
    {
        // Header length 640 is stored as 80 02 00 ..., the same two bytes a legacy torch.save pickle starts with.
        using var folder = NewTempFolder();
        string path = folder.File("640.safetensors");
        string json = "{\"x\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4]}}";
        byte[] header = Encoding.UTF8.GetBytes(json.PadRight(640));
        File.WriteAllBytes(path, [.. BitConverter.GetBytes(640UL), .. header, .. BitConverter.GetBytes(2.5f)]);

        using var checkpoint = CheckpointFile.Read(path);

        Assert.Equal(2.5f, checkpoint.StateDict["x"].item<float>());
    }

    /// <summary>Distinct, edge-heavy values per dtype (NaN, ±inf, -0, extremes), so a byte slip cannot pass.</summary>
    internal static Tensor Sample(ScalarType type, long[] shape)
    {
        long count = shape.Aggregate(1L, (a, b) => a * b);
        var raw = arange(count, ScalarType.Float64) * 37.25 - 100.5;
        if (type == ScalarType.Bool)
        {
            return (arange(count) % 3 == 0).view(shape);
        }
        if (type is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16)
        {
            var values = raw.to(type).view(shape);
            var flat = values.view(-1);
            double[] specials = [double.NaN, double.PositiveInfinity, double.NegativeInfinity, -0.0];
            for (int i = 0; i < specials.Length && i < count; i++)
            {
                flat[i] = tensor(specials[i], type);
            }
            return values;
        }
        var (low, high) = type switch
        {
            ScalarType.Byte => (0L, 256L),
            ScalarType.Int8 => (-128L, 128L),
            ScalarType.Int16 => (-32768L, 32768L),
            ScalarType.Int32 => ((long)int.MinValue, (long)int.MaxValue),
            _ => (long.MinValue / 2, long.MaxValue / 2),
        };
        var generator = new torch.Generator(1234);
        return randint(low, high, shape, type, generator: generator);
    }
}
