using System.IO.Compression;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using TorchSharp;
using WinTok.Checkpoints;
using static TorchSharp.torch;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

public sealed class PthReadingTests
{
    [Fact]
    public void Read_TinyPthAndTinySafetensors_GiveTheSameKeysAndBitIdenticalTensors()
    {
        using var pth = CheckpointFile.Read(TinyPth);
        using var safetensors = CheckpointFile.Read(TinySafetensors);

        Assert.Equal(CheckpointFileFormat.PyTorch, pth.Format);
        Assert.Equal(CheckpointFileFormat.Safetensors, safetensors.Format);
        Assert.Equal(safetensors.StateDict.Keys.Order(StringComparer.Ordinal), pth.StateDict.Keys.Order(StringComparer.Ordinal));
        Assert.Contains("encoder.vision_model.encoder.layers.0.self_attn.q_proj.weight", pth.StateDict.Keys);
        // The fixture generator saved the safetensors before, and the .pth after, a training-mode forward that
        // updates the codebook usage buffers; those are checked against the zip's raw storages below.
        foreach (var (name, tensor) in safetensors.StateDict.Where(pair => !pair.Key.EndsWith(".vocab_usage", StringComparison.Ordinal)))
        {
            AssertBitIdentical(tensor, pth.StateDict[name], name);
        }
    }

    [Fact]
    public void Read_TinyPth_ReadsTheUsageBuffersTheReferenceUpdatedBeforeSaving()
    {
        using var pth = CheckpointFile.Read(TinyPth);
        using var zip = ZipFile.OpenRead(TinyPth);
        using var entry = zip.GetEntry("tiny/data/128")!.Open();   // the storage of quantizer.codebooks.0.vocab_usage
        var raw = new byte[256];
        entry.ReadExactly(raw);

        Assert.Equal(raw, Bits(pth.StateDict["quantizer.codebooks.0.vocab_usage"]));
        foreach (int codebook in Enumerable.Range(0, 4))
        {
            // A usage distribution: sums to one after the forward, zero in the freshly initialised safetensors.
            Assert.Equal(1.0, pth.StateDict[$"quantizer.codebooks.{codebook}.vocab_usage"].sum().item<float>(), 1e-5);
        }
    }

    [Fact]
    public void Read_TinyPth_KeepsTheStateDictOrderOfTheFile()
    {
        using var pth = CheckpointFile.Read(TinyPth);

        // state_dict order: root parameters first, as the reference module registers them.
        Assert.Equal(["query_tokens", "query_tokens_pos_embed", "decoder_rec_pos_embed"], pth.StateDict.Keys.Take(3));
    }

    [Fact]
    public void Read_TinyPth_MapsArgsToDotNetValues()
    {
        using var pth = CheckpointFile.Read(TinyPth);

        Assert.Equal("torch.float32", pth.Args["dtype"]);
        Assert.Equal(4L, pth.Args["num_latent_tokens"]);
        Assert.Equal(256L, pth.Args["vocab_size"]);
        Assert.Equal(16L, pth.Args["vocab_width"]);
        Assert.Equal(4L, pth.Args["num_codebooks"]);
        Assert.Equal(0.25, pth.Args["vq_beta"]);
        Assert.Equal(1.0, pth.Args["subset_ratio"]);
        Assert.Equal(true, pth.Args["bf16"]);
        Assert.Null(pth.Args["val_data"]);
        Assert.Equal("wintok", pth.Args["exp_name"]);
    }

    [Fact]
    public void Read_TinyPth_HasTheSameArgsAsTheFixtureConfig()
    {
        using var pth = CheckpointFile.Read(TinyPth);
        using var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(Reference, "tiny.config.json")));

        foreach (var property in config.RootElement.GetProperty("args").EnumerateObject())
        {
            object? actual = pth.Args[property.Name];
            switch (property.Value.ValueKind)
            {
                case JsonValueKind.Number when actual is long integer:
                    Assert.Equal(property.Value.GetInt64(), integer);
                    break;
                case JsonValueKind.Number:
                    Assert.Equal(property.Value.GetDouble(), Assert.IsType<double>(actual));
                    break;
                case JsonValueKind.String when property.Name != "model":
                    Assert.Equal(property.Value.GetString(), actual);
                    break;
                case JsonValueKind.True or JsonValueKind.False:
                    Assert.Equal(property.Value.GetBoolean(), actual);
                    break;
                case JsonValueKind.Null:
                    Assert.Null(actual);
                    break;
            }
        }
    }

    [Fact]
    public void Read_TinySafetensorsWithoutArgsMetadata_HasEmptyArgs()
    {
        using var safetensors = CheckpointFile.Read(TinySafetensors);

        Assert.Empty(safetensors.Args);
    }

    [Theory]
    [InlineData("views.pth")]
    [InlineData("views_protocol4.pth")]
    public void Read_GeneratedCheckpoint_MatchesTheGeneratorsDTypesShapesAndValues(string file)
    {
        using var checkpoint = CheckpointFile.Read(DataFile(file));

        AssertMatchesExpected("views", checkpoint);
    }

    [Fact]
    public void Read_CheckpointWithParameters_RebuildsThemFromATopLevelStateDict()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("parameters.pth"));

        AssertMatchesExpected("parameters", checkpoint);
        Assert.Empty(checkpoint.Args);
        Assert.All(checkpoint.StateDict.Values, tensor => Assert.False(tensor.requires_grad));
    }

    [Fact]
    public void Read_TrainingCheckpoint_ReturnsOnlyTrainerUnitokWeights()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("views.pth"));

        // 'trainer' also holds 'disc' and 'config'; neither leaks into the model's state_dict.
        Assert.DoesNotContain("w", checkpoint.StateDict.Keys);
        Assert.Equal(15, checkpoint.StateDict.Count);
    }

    [Fact]
    public void Read_WithAStateDictPath_ReturnsThatSectionAndTheArgs()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("views.pth"), "trainer", "disc");

        Assert.Equal(["w"], checkpoint.StateDict.Keys);
        Assert.Equal(9f, checkpoint.StateDict["w"][0].item<float>());
        Assert.Equal("torch.bfloat16", checkpoint.Args["dtype"]);
    }

    [Fact]
    public void Read_WithAStateDictPathThatDoesNotExist_FailsListingTheKeysThere()
    {
        var error = Assert.Throws<CheckpointFormatException>(() => CheckpointFile.Read(DataFile("views.pth"), "trainer", "ema"));

        Assert.Contains("ckpt['trainer'] has no key 'ema'; its keys are [config, unitok, disc]", error.Message);
    }

    [Fact]
    public void Read_ViewsSharingAStorage_AreIndependentContiguousTensors()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("views.pth"));
        var transposed = checkpoint.StateDict["base_t"];
        var slice = checkpoint.StateDict["slice"];

        Assert.True(transposed.is_contiguous());
        Assert.True(slice.is_contiguous());
        checkpoint.StateDict["base"].fill_(-1f);
        Assert.Equal(1f, transposed[1, 0].item<float>());   // base[0, 1] before the fill
        Assert.Equal(5f, slice[0, 0].item<float>());        // base[1, 1]
    }

    [Fact]
    public void Read_ArgsWithDTypeObjectsAndUnknownClasses_MapsThemToValuesAndPlaceholders()
    {
        using var checkpoint = CheckpointFile.Read(DataFile("views.pth"));
        var args = checkpoint.Args;

        Assert.Equal("torch.bfloat16", args["dtype"]);
        Assert.Equal("/mnt/somewhere/siglip2-so400m-patch16-256", args["model"]);
        Assert.Equal(BigInteger.Pow(2, 70), args["big"]);
        Assert.Equal(-100000L, args["negative"]);
        Assert.Equal(1e-4, args["lr"]);
        Assert.Equal(false, args["fp16"]);
        Assert.Null(args["val_data"]);
        Assert.Equal([0.9, 0.95], Assert.IsAssignableFrom<IReadOnlyList<object?>>(args["betas"]));
        Assert.Equal([1L, 2L, 3L, 4L], Assert.IsAssignableFrom<IReadOnlyList<object?>>(args["sizes"]));
        var nested = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(args["nested"]);
        Assert.Equal(1L, nested["a"]);
        Assert.Equal([null, "x"], Assert.IsAssignableFrom<IReadOnlyList<object?>>(nested["b"]));
        Assert.Equal(new byte[] { 0, 1, 2 }, args["blob"]);
        var choice = Assert.IsType<PythonObject>(args["choice"]);
        Assert.Equal("utils.config.ConfigChoice", choice.TypeName);
        Assert.Equal("gn", Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(choice.State)["value"]);
        var path = Assert.IsType<PythonObject>(args["path"]);
        Assert.Equal("pathlib.PurePosixPath", path.TypeName);
        Assert.Equal(["/", "tmp", "x"], path.Arguments);
        Assert.Equal([3L, 256L, 256L], Assert.IsAssignableFrom<IReadOnlyList<object?>>(args["image_shape"]));
        Assert.Equal(["only"], Assert.IsAssignableFrom<IReadOnlyList<object?>>(args["tags"]));
    }

    [Fact]
    public void Read_Protocol2AndProtocol4Pickles_GiveEqualArgs()
    {
        using var protocol2 = CheckpointFile.Read(DataFile("views.pth"));
        using var protocol4 = CheckpointFile.Read(DataFile("views_protocol4.pth"));

        Assert.Equal(protocol2.Args.Keys, protocol4.Args.Keys);
        Assert.Equal(protocol2.Args["dtype"], protocol4.Args["dtype"]);
        Assert.Equal(protocol2.Args["big"], protocol4.Args["big"]);
        Assert.Equal(protocol2.Args["betas"], protocol4.Args["betas"]);
        Assert.Equal(protocol2.Args["tags"], protocol4.Args["tags"]);
        Assert.Equal(protocol2.Args["image_shape"], protocol4.Args["image_shape"]);
    }

    [Fact(Timeout = 60_000)]
    public async Task Read_ArgsThatReferToThemselvesOrShareValues_ConvertsOnceAndMarksTheCycle()
    {
        using var folder = NewTempFolder();
        string path = folder.File("graph.pth");
        BadCheckpointTests.RewriteZip(DataFile("views.pth"), path,
            (name, data) => name.EndsWith("data.pkl", StringComparison.Ordinal) ? GraphPickle(levels: 80) : data);

        // 80 levels of [previous, previous] are 2^80 paths: only sharing converted values makes this finish.
        using var checkpoint = await Task.Run(() => CheckpointFile.Read(path), TestContext.Current.CancellationToken);

        var cycle = Assert.IsAssignableFrom<IReadOnlyList<object?>>(checkpoint.Args["cycle"]);
        Assert.Equal("<recursive reference>", Assert.IsType<PythonObject>(cycle[0]).TypeName);
        var shared = Assert.IsAssignableFrom<IReadOnlyList<object?>>(checkpoint.Args["shared"]);
        Assert.Same(shared[0], shared[1]);
        Assert.Empty(checkpoint.StateDict);
    }

    /// <summary>{'args': {'cycle': l where l = [l], 'shared': x80 where x(i) = [x(i-1), x(i-1)]}, 'trainer': {'unitok': {}}}</summary>
    private static byte[] GraphPickle(int levels)
    {
        var pickle = new List<byte> { 0x80, 2, (byte)'}' };
        void Text(string text) => pickle.AddRange([0x8c, (byte)text.Length, .. System.Text.Encoding.ASCII.GetBytes(text)]);
        Text("args");
        pickle.Add((byte)'}');
        Text("cycle");
        pickle.AddRange([(byte)']', (byte)'q', 250, (byte)'h', 250, (byte)'a', (byte)'s']);
        Text("shared");
        pickle.AddRange([(byte)']', (byte)'q', 0, (byte)'0']);
        for (int level = 1; level <= levels; level++)
        {
            byte previous = (byte)(level - 1);
            pickle.AddRange([(byte)']', (byte)'h', previous, (byte)'a', (byte)'h', previous, (byte)'a', (byte)'q', (byte)level, (byte)'0']);
        }
        pickle.AddRange([(byte)'h', (byte)levels, (byte)'s', (byte)'s']);
        Text("trainer");
        pickle.Add((byte)'}');
        Text("unitok");
        pickle.AddRange([(byte)'}', (byte)'s', (byte)'s', (byte)'.']);
        return [.. pickle];
    }

    internal static void AssertMatchesExpected(string set, Checkpoint checkpoint, string expectedFile = "expected.json")
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(DataFile(expectedFile)));
        var tensors = expected.RootElement.GetProperty(set);
        Assert.Equal(tensors.EnumerateObject().Select(p => p.Name), checkpoint.StateDict.Keys);
        foreach (var property in tensors.EnumerateObject())
        {
            var tensor = checkpoint.StateDict[property.Name];
            var spec = property.Value;
            Assert.True(DTypes[spec.GetProperty("dtype").GetString()!] == tensor.dtype, $"{property.Name}: dtype {tensor.dtype}");
            Assert.Equal(spec.GetProperty("shape").EnumerateArray().Select(s => s.GetInt64()), tensor.shape);
            Assert.True(tensor.is_contiguous(), property.Name);
            var values = spec.GetProperty("values").EnumerateArray().ToList();
            if (tensor.dtype == ScalarType.Int64)
            {
                Assert.Equal(values.Select(v => v.GetInt64()), MemoryMarshal.Cast<byte, long>(tensor.bytes).ToArray());
                continue;
            }
            using var asDouble = tensor.to(ScalarType.Float64);
            var expectedValues = values.Select(v => v.ValueKind switch
            {
                JsonValueKind.True => 1.0,
                JsonValueKind.False => 0.0,
                _ => v.GetDouble(),
            });
            Assert.Equal(expectedValues, MemoryMarshal.Cast<byte, double>(asDouble.bytes).ToArray());
        }
    }

    private static readonly Dictionary<string, ScalarType> DTypes = new()
    {
        ["float32"] = ScalarType.Float32,
        ["float64"] = ScalarType.Float64,
        ["float16"] = ScalarType.Float16,
        ["bfloat16"] = ScalarType.BFloat16,
        ["int64"] = ScalarType.Int64,
        ["int32"] = ScalarType.Int32,
        ["int16"] = ScalarType.Int16,
        ["int8"] = ScalarType.Int8,
        ["uint8"] = ScalarType.Byte,
        ["bool"] = ScalarType.Bool,
    };
}
