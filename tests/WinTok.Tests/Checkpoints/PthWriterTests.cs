using System.Buffers.Binary;
using System.IO.Compression;
using System.Numerics;
using System.Text;
using TorchSharp;
using WinTok.Checkpoints;
using WinTok.Checkpoints.Pickle;
using static TorchSharp.torch;
using static WinTok.Tests.Checkpoints.CheckpointTestFiles;

namespace WinTok.Tests.Checkpoints;

/// <summary>
/// <see cref="CheckpointFile.WritePyTorch(string, TrainingCheckpoint)"/> writes what torch.save writes: our reader
/// gets back every tensor bit-exactly and every value, and the zip and pickle have torch's structure.
/// </summary>
public sealed class PthWriterTests
{
    /// <summary>Set to a file path to keep the sample checkpoint for tests/fixtures-tools/check_written_checkpoint.py.</summary>
    public const string WriteToVariable = "WINTOK_WRITE_CHECKPOINT_TO";

    [Fact]
    public void WritePyTorch_TrainingCheckpoint_ReadsBackEveryModelTensorBitExactlyInOrder()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);
        using var checkpoint = CheckpointFile.Read(path);

        Assert.Equal(CheckpointFileFormat.PyTorch, checkpoint.Format);
        Assert.Equal(sample.Model.Keys, checkpoint.StateDict.Keys);
        foreach (var (name, tensor) in sample.Model)
        {
            using var expected = tensor.contiguous();
            AssertBitIdentical(expected, checkpoint.StateDict[name], name);
        }
    }

    [Fact]
    public void WritePyTorch_TrainingCheckpoint_ReadsBackTheArgsAsPythonValues()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);
        using var checkpoint = CheckpointFile.Read(path);
        var args = checkpoint.Args;

        Assert.Equal(sample.Args.Keys, args.Keys);
        Assert.Equal("/mnt/models/siglip2-so400m-patch16-256", args["model"]);
        Assert.Equal("torch.bfloat16", args["dtype"]);
        Assert.Equal(4L, args["num_latent_tokens"]);
        Assert.Equal(32768L, args["vocab_size"]);
        Assert.Equal(1e-4, args["lr"]);
        Assert.Equal(true, args["bf16"]);
        Assert.Null(args["val_data"]);
        Assert.Equal([0.9, 0.95], Assert.IsAssignableFrom<IReadOnlyList<object?>>(args["optim_betas"]));
        Assert.Equal([1L, 2L, 3L], Assert.IsAssignableFrom<IReadOnlyList<object?>>(args["sizes"]));
        var nested = Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(args["nested"]);
        Assert.Equal(1L, nested["a"]);
        Assert.Equal([null, "x"], Assert.IsAssignableFrom<IReadOnlyList<object?>>(nested["b"]));
        Assert.Equal(1L << 40, args["seed_space"]);
        Assert.Equal(BigInteger.Pow(2, 70), args["huge"]);
        Assert.Equal(-100000L, args["negative"]);
        Assert.Equal(-(1L << 40), args["negative_wide"]);
        Assert.Equal(new byte[] { 0, 1, 2, 255 }, args["blob"]);
        Assert.Equal("päth→ø", args["unicode"]);
        Assert.Equal(args.Keys, CheckpointFile.ReadArgs(path).Keys);
    }

    [Fact]
    public void WritePyTorch_TrainingCheckpoint_ReadsBackTheDiscriminatorAndOptimizerTensors()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);
        using var disc = CheckpointFile.Read(path, "trainer", "disc");
        using var moments = CheckpointFile.Read(path, "trainer", "unitok_optim", "optimizer", "state", "2");
        using var discMoments = CheckpointFile.Read(path, "trainer", "disc_optim", "optimizer", "state", "0");

        AssertBitIdentical(sample.Discriminator["head.weight"], disc.StateDict["head.weight"], "disc head.weight");
        Assert.Equal(["step", "exp_avg", "exp_avg_sq"], moments.StateDict.Keys);
        var expected = sample.ModelOptimizer.State[2];
        AssertBitIdentical(expected.Step, moments.StateDict["step"], "step");
        AssertBitIdentical(expected.ExpAvg, moments.StateDict["exp_avg"], "exp_avg");
        AssertBitIdentical(expected.ExpAvgSq, moments.StateDict["exp_avg_sq"], "exp_avg_sq");
        AssertBitIdentical(sample.DiscriminatorOptimizer.State[0].ExpAvgSq, discMoments.StateDict["exp_avg_sq"], "disc exp_avg_sq");
    }

    [Fact]
    public void WritePyTorch_TrainingCheckpoint_HasTheReferenceLayoutAndAdamWParamGroups()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);
        var root = ReadTree(path);

        Assert.Equal(["args", "epoch", "iter", "trainer"], root.Keys);
        Assert.Equal(3L, root["epoch"]);
        Assert.Equal(1234L, root["iter"]);
        var trainer = Dict(root["trainer"]);
        Assert.Equal(["config", "unitok", "disc", "unitok_optim", "disc_optim"], trainer.Keys);
        Assert.Equal("hinge", Dict(trainer["config"])["dcrit"]);
        var optimizer = Dict(Dict(trainer["unitok_optim"])["optimizer"]);
        Assert.Equal(["state", "param_groups"], optimizer.Keys);
        Assert.Equal(["0", "1", "2"], Dict(optimizer["state"]).Keys);
        var groups = Assert.IsAssignableFrom<IReadOnlyList<object?>>(optimizer["param_groups"]);
        var first = Dict(groups[0]);
        Assert.Equal(
            ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused",
                "decoupled_weight_decay", "init_lr", "params"],
            first.Keys);
        Assert.Equal(1e-4, first["lr"]);
        Assert.Equal([0.9, 0.95], Assert.IsAssignableFrom<IReadOnlyList<object?>>(first["betas"]));
        Assert.Equal(1e-8, first["eps"]);
        Assert.Equal(0.05, first["weight_decay"]);
        Assert.Equal(false, first["amsgrad"]);
        Assert.Null(first["foreach"]);
        Assert.Null(first["fused"]);
        Assert.Equal(true, first["decoupled_weight_decay"]);
        Assert.Equal([0L], Assert.IsAssignableFrom<IReadOnlyList<object?>>(first["params"]));
        var second = Dict(groups[1]);
        Assert.Equal(true, second["fused"]);
        Assert.Equal([1L, 2L], Assert.IsAssignableFrom<IReadOnlyList<object?>>(second["params"]));
    }

    [Fact]
    public void WritePyTorch_TrainingCheckpoint_HasTorchSaveZipRecordsAlignedTo64Bytes()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);

        int storages = sample.DistinctTensorCount;
        string[] expectedNames =
        [
            "archive/data.pkl", "archive/.format_version", "archive/.storage_alignment", "archive/byteorder",
            .. Enumerable.Range(0, storages).Select(i => $"archive/data/{i}"), "archive/version", "archive/.data/serialization_id",
        ];
        using (var zip = ZipFile.OpenRead(path))
        {
            Assert.Equal(expectedNames, zip.Entries.Select(entry => entry.FullName));
            Assert.All(zip.Entries, entry => Assert.Equal(entry.Length, entry.CompressedLength));
            Assert.Equal("1", Text(zip, "archive/.format_version"));
            Assert.Equal("64", Text(zip, "archive/.storage_alignment"));
            Assert.Equal("little", Text(zip, "archive/byteorder"));
            Assert.Equal("3\n", Text(zip, "archive/version"));
            Assert.Matches("^[0-9]{40}$", Text(zip, "archive/.data/serialization_id"));
        }
        Assert.All(LocalRecords(File.ReadAllBytes(path)), record => Assert.True(record.DataOffset % 64 == 0, $"{record.Name} starts at {record.DataOffset}"));
    }

    [Fact]
    public void WritePyTorch_TrainingCheckpoint_PicklesOnlyGlobalsTorchWeightsOnlyAllows()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);
        byte[] pickle = Entry(path, "archive/data.pkl");
        var environment = new RecordingEnvironment(path);
        PickleReader.Load(pickle, path, environment);

        Assert.Equal([0x80, 2], pickle[..2]);   // PROTO 2, torch.save's default
        Assert.Equal((byte)'.', pickle[^1]);
        Assert.Equal(
            ["_codecs.encode", "collections.OrderedDict", "torch.BFloat16Storage", "torch.BoolStorage", "torch.ByteStorage",
                "torch.FloatStorage", "torch.HalfStorage", "torch.IntStorage", "torch.LongStorage", "torch._utils._rebuild_tensor_v2",
                "torch.bfloat16"],
            environment.Globals.Order(StringComparer.Ordinal));
        // Every storage is named once by key per tensor that uses it, through BINPERSID ('Q').
        Assert.Equal(sample.DistinctTensorCount, environment.StorageKeys.Distinct().Count());
        Assert.True(pickle.AsSpan().IndexOf("ctorch._utils\n_rebuild_tensor_v2\n"u8) >= 0, "GLOBAL torch._utils _rebuild_tensor_v2");
        Assert.True(pickle.AsSpan().IndexOf("ctorch\nbfloat16\n"u8) >= 0, "GLOBAL torch bfloat16");
    }

    [Fact]
    public void WritePyTorch_TensorUnderTwoNames_IsStoredOnceAndReadBackUnderBoth()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);
        using var checkpoint = CheckpointFile.Read(path);

        // 11 model tensors (one under two names), 1 discriminator tensor, 2 steps (one shared by two parameters) and
        // 6 moments for the model's optimizer, 1 step and 2 moments for the discriminator's.
        using (var zip = ZipFile.OpenRead(path))
        {
            Assert.Equal(sample.DistinctTensorCount, zip.Entries.Count(entry => entry.FullName.StartsWith("archive/data/", StringComparison.Ordinal)));
        }
        Assert.Equal(23, sample.DistinctTensorCount);
        AssertBitIdentical(checkpoint.StateDict["encoder.weight"], checkpoint.StateDict["decoder.tied_weight"], "tied");
    }

    [Fact]
    public void WritePyTorch_StateDictOfThousandsOfEntries_KeepsTheirOrderAcrossSetItemsBatches()
    {
        using var folder = NewTempFolder();
        using var scope = NewDisposeScope();
        string path = folder.File("many.pth");
        var stateDict = new OrderedDictionary<string, Tensor>();
        foreach (int i in Enumerable.Range(0, 2500).Reverse())
        {
            stateDict[$"layer{i}.weight"] = full(1, (float)i);
        }

        CheckpointFile.WritePyTorch(path, new TrainingCheckpoint(new Dictionary<string, object?>(), stateDict));
        using var checkpoint = CheckpointFile.Read(path);

        Assert.Equal(stateDict.Keys, checkpoint.StateDict.Keys);
        Assert.Equal(1234f, checkpoint.StateDict["layer1234.weight"][0].item<float>());
    }

    [Fact]
    public void WritePyTorch_WhenZip64RecordsAreForced_ReadsBackTheSame()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("zip64.pth");

        // A threshold of 0 makes every size and offset take the ZIP64 fields that files past 4 GiB need.
        PthWriter.Write(path, sample.Checkpoint.ToPickleTree(), zip64Threshold: 0);
        using var checkpoint = CheckpointFile.Read(path);

        foreach (var (name, tensor) in sample.Model)
        {
            using var expected = tensor.contiguous();
            AssertBitIdentical(expected, checkpoint.StateDict[name], name);
        }
        Assert.Equal("torch.bfloat16", checkpoint.Args["dtype"]);
        Assert.All(LocalRecords(File.ReadAllBytes(path)), record => Assert.True(record.DataOffset % 64 == 0, record.Name));
    }

    [Fact]
    public void WritePyTorch_OverAnExistingFile_ReplacesItAndLeavesNoTemporary()
    {
        using var folder = NewTempFolder();
        using var sample = new TrainingCheckpointSample();
        string path = folder.File("ckpt.pth");
        File.WriteAllText(path, "old");

        CheckpointFile.WritePyTorch(path, sample.Checkpoint);

        Assert.Equal(["ckpt.pth"], Directory.GetFiles(folder.Path).Select(Path.GetFileName));
        using var checkpoint = CheckpointFile.Read(path);
        Assert.Equal(sample.Model.Count, checkpoint.StateDict.Count);
    }

    [Fact]
    public void WritePyTorch_WhenAValueHasNoPythonEquivalent_FailsNamingItsPathAndKeepsTheOldFile()
    {
        using var folder = NewTempFolder();
        string path = folder.File("ckpt.pth");
        File.WriteAllText(path, "old");
        var checkpoint = new Dictionary<string, object?> { ["args"] = new Dictionary<string, object?> { ["when"] = DateTime.UnixEpoch } };

        var error = Assert.Throws<ArgumentException>(() => CheckpointFile.WritePyTorch(path, checkpoint));

        Assert.Contains("checkpoint['args']['when'] is a System.DateTime", error.Message);
        Assert.Equal("old", File.ReadAllText(path));
        Assert.Single(Directory.GetFiles(folder.Path));
    }

    [Fact]
    public void WritePyTorch_WhenATensorHasAnUnsupportedDType_FailsNamingTheTensor()
    {
        using var folder = NewTempFolder();
        using var scope = NewDisposeScope();
        var stateDict = new Dictionary<string, Tensor> { ["rotary"] = zeros(2, ScalarType.ComplexFloat32) };

        var error = Assert.Throws<ArgumentException>(() =>
            CheckpointFile.WritePyTorch(folder.File("c.pth"), new TrainingCheckpoint(new Dictionary<string, object?>(), stateDict)));

        Assert.Contains("checkpoint['trainer']['unitok']['rotary'] has dtype ComplexFloat32", error.Message);
    }

    [Fact]
    public void WritePyTorch_WhenAParameterIsInTwoGroups_FailsNamingTheIndex()
    {
        using var folder = NewTempFolder();
        using var scope = NewDisposeScope();
        var optimizer = new AdamWState(new Dictionary<int, AdamWParamState>(), [new AdamWParamGroup([0, 1]), new AdamWParamGroup([1])]);

        var error = Assert.Throws<ArgumentException>(() => CheckpointFile.WritePyTorch(folder.File("c.pth"),
            new TrainingCheckpoint(new Dictionary<string, object?>(), new Dictionary<string, Tensor>()) { ModelOptimizer = optimizer }));

        Assert.Contains("Parameter index 1 is in param group 0 and in group 1", error.Message);
    }

    [Fact]
    public void WritePyTorch_WhenOptimizerStateNamesAParameterNoGroupHas_FailsNamingTheIndex()
    {
        using var folder = NewTempFolder();
        using var scope = NewDisposeScope();
        var optimizer = new AdamWState(
            new Dictionary<int, AdamWParamState> { [5] = new(tensor(1f), zeros(2), zeros(2)) },
            [new AdamWParamGroup([0])]);

        var error = Assert.Throws<ArgumentException>(() => CheckpointFile.WritePyTorch(folder.File("c.pth"),
            new TrainingCheckpoint(new Dictionary<string, object?>(), new Dictionary<string, Tensor>()) { ModelOptimizer = optimizer }));

        Assert.Contains("parameter index 5, which no param group lists", error.Message);
    }

    [Fact]
    public void WritePyTorch_WhenAskedThroughTheEnvironment_KeepsTheSampleForTorchToCheck()
    {
        string? target = Environment.GetEnvironmentVariable(WriteToVariable);
        Assert.SkipWhen(string.IsNullOrEmpty(target), $"{WriteToVariable} is not set");
        using var sample = new TrainingCheckpointSample();

        CheckpointFile.WritePyTorch(target!, sample.Checkpoint);
        sample.WriteExpectation(target + ".expected.json");
        // The same content with every record in ZIP64 form, as files past 4 GiB need, for torch to read as well.
        PthWriter.Write(target + ".zip64.pth", sample.Checkpoint.ToPickleTree(), zip64Threshold: 0);

        using var checkpoint = CheckpointFile.Read(target!);
        Assert.Equal(sample.Model.Keys, checkpoint.StateDict.Keys);
    }

    /// <summary>The whole pickled tree as .NET values (tensors as placeholders), read the way PthReader reads it.</summary>
    private static IReadOnlyDictionary<string, object?> ReadTree(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        return PythonValueConverter.ToDictionary(PthReader.LoadPickle(path, zip).Top);
    }

    private static IReadOnlyDictionary<string, object?> Dict(object? value) => Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(value);

    private static string Text(ZipArchive zip, string name)
    {
        using var reader = new StreamReader(zip.GetEntry(name)!.Open());
        return reader.ReadToEnd();
    }

    private static byte[] Entry(string path, string name)
    {
        using var zip = ZipFile.OpenRead(path);
        using var stream = zip.GetEntry(name)!.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    /// <summary>Walks the local file headers from the start of the zip: each record's name and data offset.</summary>
    private static List<(string Name, long DataOffset)> LocalRecords(byte[] zip)
    {
        var records = new List<(string, long)>();
        int at = 0;
        while (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at)) == 0x04034b50)
        {
            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 26));
            int extraLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 28));
            string name = Encoding.UTF8.GetString(zip, at + 30, nameLength);
            int dataOffset = at + 30 + nameLength + extraLength;
            long size = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at + 22));
            if (size == uint.MaxValue)
            {
                size = BinaryPrimitives.ReadInt64LittleEndian(zip.AsSpan(at + 30 + nameLength + 4));
            }
            records.Add((name, dataOffset));
            at = dataOffset + (int)size;
        }
        return records;
    }

    /// <summary>The reader's own environment, noting every global and storage key the pickle names.</summary>
    private sealed class RecordingEnvironment(string path) : IPickleEnvironment
    {
        private readonly TorchPickleEnvironment inner = new(path);

        public HashSet<string> Globals { get; } = [];

        public List<string> StorageKeys { get; } = [];

        public object FindGlobal(string module, string name, int at)
        {
            Globals.Add($"{module}.{name}");
            return inner.FindGlobal(module, name, at);
        }

        public object? PersistentLoad(object? persistentId)
        {
            var storage = (StorageReference)inner.PersistentLoad(persistentId)!;
            StorageKeys.Add(storage.Key);
            return storage;
        }
    }
}
