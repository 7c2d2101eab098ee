using System.Text.Json;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Train;

namespace WinTok.Worker.Tests.Train;

/// <summary>The training configuration file: the reference's Args names carry over, every problem is named at once.</summary>
public sealed class TrainConfigTests
{
    private const string Minimal = """
        { "train_data": "/data/images", "output": "/runs/a", "teacher": "/w/siglip2", "lpips": "/w/lpips_with_vgg.pth", "dino": "/w/dinov2.pth" }
        """;

    [Fact]
    public void Parse_OfAMinimalFile_GivesTheReferenceDefaults()
    {
        var config = TrainConfig.Parse(Minimal);

        Assert.Equal(["/data/images"], config.TrainData);
        Assert.Equal(2e-4, config.Args["lr"]);
        Assert.Equal(4L, config.Args["grad_accu"]);
        Assert.Equal(32L, config.Args["num_latent_tokens"]);
        Assert.Equal(TrainConfig.BFloat16, config.Precision);
        Assert.Equal(8, config.LocalBatch);
        Assert.Equal(50, config.LogEvery);
        Assert.Null(config.SaveEvery);
        Assert.Equal("/w/siglip2", config.Args["model"]);
        Assert.Empty(config.Ignored);
    }

    [Fact]
    public void Parse_OfTheReferenceTrainShValues_TakesThemOverUnderTheirOwnNames()
    {
        // scripts/train_tokenizer/train.sh and utils/config.py names, as a user copies them.
        var config = TrainConfig.Parse("""
            {
              "model": "/w/siglip2-so400m-patch16-256", "lpips_path": "external/lpips_with_vgg.pth", "dino_path": "external/dinov2_vits14_pretrain.pth",
              "output_dir": "output_pretrain", "exp_name": "pretrain_wintok", "vis_img_dir": "assets/vis_imgs/",
              "train_data": "/data/shards", "train_num_samples": 50000000,
              "local_bs": 8, "vae_local_bs": 8, "num_latent_tokens": 256, "grad_accu": 4, "epoch": 5, "bf16": true, "lr": 2e-4
            }
            """, baseFolder: "/home/me/wintok");

        Assert.Equal("/w/siglip2-so400m-patch16-256", config.Teacher);
        Assert.Equal("/home/me/wintok/external/dinov2_vits14_pretrain.pth", config.Dino);
        Assert.Equal("/home/me/wintok/output_pretrain", config.Output);
        Assert.Equal(256L, config.Args["num_latent_tokens"]);
        Assert.Equal(50_000_000L, config.TrainNumSamples);
        Assert.Equal(["exp_name", "vae_local_bs", "vis_img_dir"], config.Ignored.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Parse_OfAFileWithManyProblems_NamesEveryOneAtOnce()
    {
        var error = Assert.Throws<ArgumentException>(() => TrainConfig.Parse("""
            {
              "output": "/runs/a", "lpips": "/w/l.pth",
              "warmup_epp": 0.1, "learning_rate": 1e-4,
              "fp16": true, "lc": 1.0, "lr": -1, "grad_accu": 1.5, "optimizer": "lamb",
              "precision": "fp32", "bf16": true, "vocab_size": 1000, "num_codebooks": 3, "dino_kernel_size": 4,
              "evaluate_every": 10
            }
            """));

        foreach (var expected in new[]
        {
            "unknown key 'warmup_epp' (did you mean 'warmup_ep'?)", "unknown key 'learning_rate'", "fp16 = true is not supported",
            "lc = 1 is not supported", "lr must be a finite number >= 0", "grad_accu must be an integer", "optimizer = 'lamb' is not supported",
            "precision fp32 contradicts bf16 = true", "vocab_size 1000 must be a multiple of num_codebooks 3", "dino_kernel_size must be odd",
            "teacher (or the reference's model) is required", "dino (or the reference's dino_path) is required", "train_data",
            "evaluate_every is set but evaluation",
        })
            Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void Parse_WhenLpipsIsWeightedButNotNamed_SaysToNameItOrTurnItOff()
    {
        var error = Assert.Throws<ArgumentException>(() => TrainConfig.Parse("""
            { "train_data": "/d", "output": "/o", "teacher": "/t", "dino": "/w/d.pth" }
            """));

        Assert.Contains("lp > 0 weights the LPIPS loss", error.Message);
    }

    [Fact]
    public void Parse_WithAnEvaluationTemplate_ChecksItsKeysAndMetrics()
    {
        var error = Assert.Throws<ArgumentException>(() => TrainConfig.Parse(Minimal.TrimEnd().TrimEnd('}') + """
            , "evaluation": { "dataset": "/val", "metrics": "rfid,nope", "wieghts": "/w" } }
            """));

        Assert.Contains("unknown metric 'nope'", error.Message);
        Assert.Contains("unknown key 'evaluation.wieghts' (did you mean 'weights'?)", error.Message);
    }

    [Fact]
    public void ArgsToJson_KeepsFloatsFloats()
    {
        var json = TrainConfig.ArgsToJson(new Dictionary<string, object?> { ["l2"] = 1.0, ["epoch"] = 5L, ["model"] = "m", ["seed"] = null, ["bf16"] = true });

        Assert.Equal("""{"l2":1.0,"epoch":5,"model":"m","seed":null,"bf16":true}""", json);
    }
}

/// <summary>Checkpoint names and the run's cadence, as pure functions.</summary>
public sealed class RunFilesTests
{
    [Theory]
    [InlineData(4L, "ckpt-ep0-iter4.pth")]
    [InlineData(9L, "ckpt-ep0-iter9.pth")]
    [InlineData(10L, "ckpt-ep1-iter0.pth")]
    [InlineData(29L, "ckpt-last.pth")]
    public void CheckpointName_NamesTheIterationJustFinishedAsTheReferenceDoes(long finished, string name)
    {
        Assert.Equal(name, RunFiles.CheckpointName(finished, iterationsPerEpoch: 10, maxIterations: 30));
        Assert.Equal(finished + 1, RunFiles.NextIteration(name, 10, 30));
    }

    [Fact]
    public void Checkpoints_ListsNewestFirstAndSkipsPartialFiles()
    {
        var folder = Path.Combine(Path.GetTempPath(), "wintok-tests", "runfiles-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(folder);
        try
        {
            foreach (var name in new[] { "ckpt-ep0-iter9.pth", "ckpt-ep1-iter2.pth", "ckpt-ep0-iter14.pth", "ckpt-ep1-iter4.pth.tmp", "ckpt-ep1-iter2.safetensors", "notes.pth" })
                File.WriteAllText(Path.Combine(folder, name), "");

            var names = RunFiles.Checkpoints(folder, iterationsPerEpoch: 20, maxIterations: 100).Select(Path.GetFileName);

            Assert.Equal(["ckpt-ep1-iter2.pth", "ckpt-ep0-iter14.pth", "ckpt-ep0-iter9.pth"], names);
            Assert.Equal("ckpt-ep0-iter9.pth", RunFiles.HoldsRun(folder));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Fact]
    public void Spec_SavesLogsAndEvaluatesOnItsCadenceAndAtTheEnd()
    {
        var reference = new CheckpointReference("/x", new string('0', 64), 1, "1");
        var spec = new TrainJobSpec("{}", ["/d"], "/o", new TrainWeights(reference, reference, null, reference, null), null, 100, 10, 10, 25,
            SaveEvery: 10, LogEvery: 3, EvaluateEvery: 20, new EvaluationTemplate("/v", ["psnr"], null, null, "fp32", null, 1000), "fp32", 1, "cpu",
            0, true, true, 1000, 1, 1000, 64, 0.9, DateTimeOffset.UnixEpoch);

        Assert.Equal([9L, 19L, 24L], Enumerable.Range(0, 25).Select(i => (long)i).Where(spec.SavesAfter));
        Assert.Equal([19L, 24L], Enumerable.Range(0, 25).Select(i => (long)i).Where(spec.EvaluatesAfter));
        Assert.Equal([2L, 5L, 8L, 11L, 14L, 17L, 20L, 23L, 24L], Enumerable.Range(0, 25).Select(i => (long)i).Where(spec.LogsAfter));
        Assert.Equal(spec.ToJson(), TrainJobSpec.FromJson(spec.ToJson()).ToJson());
    }
}
