using WinTok.Checkpoints;
using WinTok.Model;
using WinTok.Tests.Evaluation;
using WinTok.Training;
using static TorchSharp.torch;

namespace WinTok.Tests.Training;

/// <summary>
/// A training run as the job drives it, on the training fixture's tiny networks written to files the way a run reads
/// them (the teacher's HF folder, the formula LPIPS and DINOv2 weights, the reference's initial checkpoint): checkpoints
/// in the official layout, and a run stopped at one and resumed from the file that continues with the losses of a run
/// that was never stopped.
/// </summary>
public sealed class TrainingSessionTests : IDisposable
{
    /// <summary>The discriminator starts at iteration 2 and warms up over 2: LeCAM, blur and BCR are live from iteration 3.</summary>
    private static readonly Dictionary<string, object?> EarlyDiscriminator = new() { ["disc_start_ep"] = 0.1, ["disc_warmup_ep"] = 0.1 };

    private readonly string folder = Path.Combine(Path.GetTempPath(), "wintok-tests", "training-session-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(folder)) Directory.Delete(folder, recursive: true);
    }

    [Fact]
    public void Resume_FromACheckpointWrittenMidAccumulation_ContinuesWithTheLossesOfAnUninterruptedRun()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        var setup = FixtureRun.Write(fixture, folder, EarlyDiscriminator);
        const int stop = 5;  // iteration 4 accumulated gradients (grad_accu 2) that iteration 5 steps with
        const int end = 6;

        var uninterrupted = new List<TrainStepResult>();
        using (var session = TrainingSession.Create(setup, CPU))
        {
            for (var i = 0; i < end; i++) uninterrupted.Add(session.Step(Batch(fixture, i), 2, i));
        }

        var checkpoint = Path.Combine(folder, "run", "ckpt-ep0-iter4.pth");
        using (var session = TrainingSession.Create(setup, CPU))
        {
            for (var i = 0; i < stop; i++) session.Step(Batch(fixture, i), 2, i);
            session.Save(checkpoint, new TrainingSavePoint(stop, """{"epoch":0,"partition":2,"index":3}"""));
        }

        using (var session = TrainingSession.Create(setup, CPU))
        {
            var resumed = session.Resume(checkpoint);
            Assert.Equal(new TrainingResumePoint(stop, """{"epoch":0,"partition":2,"index":3}"""), resumed);
            for (var i = stop; i < end; i++)
            {
                var result = session.Step(Batch(fixture, i), 2, i);
                var expected = uninterrupted[i];
                Assert.True(expected.DiscriminatorActive, $"iteration {i} should run the discriminator");
                Assert.Equal(expected.Scalars(), result.Scalars());
                Assert.Equal(expected.PixelTokenIds, result.PixelTokenIds);
            }
        }
    }

    [Fact]
    public void Save_WritesTheReferenceLayoutThatOurLoadersRead()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        var setup = FixtureRun.Write(fixture, folder, new Dictionary<string, object?>(EarlyDiscriminator) { ["lp"] = 0.0 });
        var checkpoint = Path.Combine(folder, "run", "ckpt-ep0-iter2.pth");
        var weights = Path.ChangeExtension(checkpoint, ".safetensors");
        Dictionary<string, long[]> generatorShapes;
        using (var session = TrainingSession.Create(setup, CPU))
        {
            for (var i = 0; i < 3; i++) session.Step(Batch(fixture, i), 2, i);
            session.Save(checkpoint, new TrainingSavePoint(3, null), weights);
        }
        using (var model = fixture.LoadGenerator())
            generatorShapes = model.state_dict().ToDictionary(p => p.Key, p => p.Value.shape);

        using var training = CheckpointFile.ReadTraining(checkpoint);
        Assert.Equal((0L, 2L), (training.Epoch, training.Iteration));
        Assert.Equal(generatorShapes.Keys.Order(), training.Model.Keys.Order());
        Assert.NotNull(training.Discriminator);
        Assert.Equal("hg", training.TrainerConfig["dcrit"]);
        Assert.Equal(fixture.Options().L1Weight, training.TrainerConfig["wei_l1"]);
        // Two groups each (decayed, then not), every generator parameter stepped once (iteration 1 stepped, grad_accu 2).
        Assert.Equal(2, training.ModelOptimizer!.ParamGroups.Count);
        Assert.All(training.ModelOptimizer.State.Values, m => Assert.Equal(1f, m.Step.item<float>()));
        Assert.Equal(0.0, training.ModelOptimizer.ParamGroups[1].WeightDecay);
        Assert.True(training.ModelOptimizer.ParamGroups[0].Extra.ContainsKey("init_lr"));
        Assert.Equal("torch.float32", training.Args["dtype"]);
        Assert.IsAssignableFrom<IReadOnlyDictionary<string, object?>>(training.Args[ReferenceArgs.EncoderConfigKey]);
        Assert.True(training.Extra.ContainsKey(TrainingSession.ResumeKey));

        using var unitok = CheckpointFile.Read(checkpoint);
        using var disc = CheckpointFile.Read(checkpoint, "trainer", "disc");
        Assert.Equal(training.Model.Keys.Order(), unitok.StateDict.Keys.Order());
        Assert.Contains("heads.0.0.0.weight", disc.StateDict.Keys);
        // The model's own file and the safetensors copy load as they are, their args naming the architecture.
        using var fromPth = WinTokCheckpoint.Load(checkpoint).Model;
        using var fromSafetensors = WinTokCheckpoint.Load(weights).Model;
        Assert.Equal(fromPth.Config, fromSafetensors.Config);
    }

    [Fact]
    public void Create_FromTheTeacherFolder_InitialisesTheEncoderFromItAndTheRestAsTheReference()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        var setup = FixtureRun.Write(fixture, folder, new Dictionary<string, object?> { ["lp"] = 0.0 }, init: false);
        using var session = TrainingSession.Create(setup, CPU);
        var path = Path.Combine(folder, "init.safetensors");
        session.Save(Path.Combine(folder, "init.pth"), new TrainingSavePoint(0, null), path);
        using var saved = CheckpointFile.Read(path);
        using var teacher = CheckpointFile.Read(setup.Files.TeacherWeights);

        foreach (var (key, value) in teacher.StateDict.Where(p => !p.Key.StartsWith("vision_model.head.", StringComparison.Ordinal)))
            Assert.True(saved.StateDict["encoder." + key].equal(value).all().item<bool>(), $"encoder.{key} is not the teacher's");
        var bound = Math.Pow(4, -0.5) / 36; // vocab_init -1, width 16 / 4 codebooks
        Assert.True(saved.StateDict["quantizer.codebooks.0.codebook.weight"].abs().max().item<float>() <= bound);
        Assert.True(saved.StateDict["decoder.vision_model.encoder.layers.0.layer_norm1.weight"].eq(1).all().item<bool>());
        Assert.True(saved.StateDict["decoder.vision_model.encoder.layers.1.self_attn.q_proj.bias"].eq(0).all().item<bool>());
        Assert.True(saved.StateDict["conv_out.bias"].eq(0).all().item<bool>());
        var std = saved.StateDict["decode_task_layer_1.0.weight"].std().item<float>();
        Assert.True(std is > 0.015f and < 0.025f, $"decode_task_layer_1.0.weight has std {std}, not about 0.02");
    }

    [Fact]
    public void Create_WhenTheDinoWeightsLackATensor_NamesIt()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        var setup = FixtureRun.Write(fixture, folder, new Dictionary<string, object?> { ["lp"] = 0.0 });
        var (tensors, _) = Safetensors.Read(setup.Files.Dino);
        tensors.Remove("blocks.3.attn.qkv.weight");
        Safetensors.Write(setup.Files.Dino, tensors, new Dictionary<string, string>());

        var error = Assert.Throws<CheckpointMismatchException>(() => TrainingSession.Create(setup, CPU));

        Assert.Contains("blocks.3.attn.qkv.weight", error.Message);
    }

    [Fact]
    public void Resume_OfACheckpointWithoutOurResumeState_SaysHowToStartFromIt()
    {
        var fixture = TrainingFixture.Get(WinTok.TestSupport.TestFixtures.Folder("training"));
        var setup = FixtureRun.Write(fixture, folder, new Dictionary<string, object?> { ["lp"] = 0.0 });
        using var session = TrainingSession.Create(setup, CPU);

        var error = Assert.Throws<CheckpointFormatException>(() => session.Resume(Path.Combine(fixture.Folder, "init_generator.pth")));

        Assert.Contains("init", error.Message);
    }

    private static float[] Batch(TrainingFixture fixture, int iteration) => fixture.Batch(iteration % fixture.Iterations).contiguous().data<float>().ToArray();
}

/// <summary>The training fixture's networks as files a run reads, and the run's setup over them.</summary>
internal static class FixtureRun
{
    public static TrainingSetup Write(TrainingFixture fixture, string folder, IReadOnlyDictionary<string, object?> overrides, bool init = true)
    {
        var teacher = Path.Combine(folder, "teacher");
        Directory.CreateDirectory(teacher);
        File.WriteAllText(Path.Combine(teacher, "config.json"), ArgsJson.Serialize(TrainingFixture.Dictionary(fixture.Config, "encoder_config")));
        File.Copy(Path.Combine(fixture.Folder, "teacher.safetensors"), Path.Combine(teacher, "model.safetensors"), overwrite: true);

        var lpips = Path.Combine(folder, "lpips.safetensors");
        var table = TrainingFixture.List(TrainingFixture.Dictionary(fixture.Config, "lpips"), "params").Cast<IReadOnlyList<object?>>();
        var lpipsWeights = FormulaStateDict.Generate(table.Select(row =>
            new TensorSpec((string)row[0]!, ((IReadOnlyList<object?>)row[1]!).Select(v => (long)v!).ToArray(), (string)row[2]!)).ToList());
        Safetensors.Write(lpips, lpipsWeights, new Dictionary<string, string>());
        foreach (var t in lpipsWeights.Values) t.Dispose();

        var dino = Path.Combine(folder, "dino.safetensors");
        using (var backbone = fixture.BuildBackbone())
            Safetensors.Write(dino, backbone.state_dict(), new Dictionary<string, string>());

        var args = fixture.Config["args"] is IReadOnlyDictionary<string, object?> reference ? new Dictionary<string, object?>(reference) : throw new InvalidDataException("no args");
        foreach (var (key, value) in overrides) args[key] = value;
        return new TrainingSetup(ArgsJson.Serialize(args), (long)TrainingFixture.Dictionary(fixture.Config, "schedule")["num_batches"]!,
            TrainingFiles.FromTeacherFolder(teacher, lpips, dino, init ? Path.Combine(fixture.Folder, "init_generator.pth") : null),
            Seed: 0, DinoHeads: fixture.Dino.Heads);
    }
}

public sealed class ReferenceInitializationTests
{
    [Fact]
    public void TruncatedNormal_FillsWithTheGivenStdWithinTheCutoffs()
    {
        using var values = empty(200_000);

        ReferenceInitialization.TruncatedNormal(values, 0.02);

        Assert.InRange(values.std().item<float>(), 0.0195f, 0.0205f);
        Assert.InRange(values.mean().item<float>(), -2e-4f, 2e-4f);
        using var wide = empty(100_000);
        ReferenceInitialization.TruncatedNormal(wide, 1.0);
        Assert.True(wide.abs().max().item<float>() <= 2f, "values beyond the cutoff of 2");
        Assert.InRange(wide.std().item<float>(), 0.86f, 0.90f); // a standard normal cut at ±2 has std 0.8796
    }
}
