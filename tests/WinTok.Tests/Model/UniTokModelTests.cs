using WinTok.Checkpoints;
using WinTok.Inference;
using WinTok.Model;
using WinTok.TestSupport;
using WinTok.Tests.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.Model;

/// <summary>The UniTok fixture's tiny network, its shape and weights, for tests that need a whole model.</summary>
internal static class UniTokTestModels
{
    /// <summary>tests/fixtures/unitok's "vitamin_tiny": stem 8, stages 8/16 (2 and 4 blocks), ViT 64 x 2 with 4 heads.</summary>
    public static ViTaminShape TinyShape { get; } = new(8, 8, 16, 2, 4, 64, 2, 4);

    public static UniTokConfig Tiny { get; } = new(TinyShape, Model: "vitamin_tiny", ImgSize: 48, VocabSize: 512, VocabWidth: 32,
        EmbedDim: 24, TextWidth: 4, TextHeads: 2, TextLayers: 2, TextContextLength: 32);

    public static string TinyPth => TestFixtures.File("unitok", "tiny.pth");

    public static UniTokModel LoadFixtureTiny() => UniTokCheckpoint.Load(TinyPth, TinyShape).Model;
}

public sealed class UniTokModelTests
{
    [Fact]
    public void Construct_WhenConfigurationIsImpossible_FailsSayingWhy()
    {
        var config = UniTokTestModels.Tiny with { VocabWidth = 20, ImgSize = 40, NumQuery = 4, QuantProj = "conv" };

        var error = Assert.Throws<ArgumentException>(() => new UniTokModel(config));

        Assert.Contains("img_size 40 is not a positive multiple of 16", error.Message);
        Assert.Contains("vocab_width 20 is not a positive multiple of num_codebooks 8", error.Message);
        Assert.Contains("num_query 4 is not supported", error.Message);
        Assert.Contains("quant_proj 'conv'", error.Message);
    }

    [Fact]
    public void FixtureArgs_DescribeTheTinyConfiguration_WithTwoProjectionHeads()
    {
        using var checkpoint = CheckpointFile.Read(UniTokTestModels.TinyPth);

        var config = UniTokArgs.ToConfig(checkpoint.Args, UniTokTestModels.TinyShape);

        Assert.Equal(UniTokTestModels.Tiny, config);
        Assert.Equal(2, config.ProjectionHeads); // embed_dim // vocab_width, not num_codebooks (8)
    }

    [Fact]
    public void Released_IsViTaminLargeAt256WithEightCodebooksOf4096By8AndSixteenProjectionHeads()
    {
        var released = UniTokConfig.Released;

        Assert.Equal(ViTaminShape.Presets["vitamin_large"], released.Encoder);
        Assert.Equal((256, 8, 4096, 8, 256, 16), (released.ImgSize, released.NumCodebooks, released.CodebookSize, released.CodeWidth, released.PixelTokens, released.ProjectionHeads));
        Assert.Equal(UniTokConfig.Released, UniTokArgs.ToConfig(new Dictionary<string, object?> { ["model"] = "vitamin_large" }));
    }

    [Fact]
    public void Description_SaysUniTokWithoutSemanticTokens()
    {
        using var model = new UniTokModel(UniTokTestModels.Tiny);

        var description = model.Description;

        Assert.Equal(new ModelDescription(ModelKinds.UniTok, 48, 8, 64, 9, 3, 0, 0, 24, description.ArgsJson), description);
        Assert.Contains("\"model\":\"vitamin_tiny\"", description.ArgsJson);
    }

    [Fact]
    public void Shapes_OfEveryOperation_AreTheDocumentedOnes()
    {
        using var model = new UniTokModel(UniTokTestModels.Tiny);
        using var images = rand(2, 3, 48, 48) * 2 - 1;
        using var noGrad = no_grad();

        using var tokens = model.Tokenize(images);
        using var fromIndices = model.IndicesToImage(tokens.Indices);
        using var reconstruction = model.Reconstruct(images);
        using var embedding = model.EncodeImage(images);

        Assert.Equal([2L, 8, 9], tokens.Indices.shape);
        Assert.Null(tokens.SemanticTokens);
        Assert.Equal([2L, 3, 48, 48], fromIndices.shape);
        Assert.True(reconstruction.Indices.equal(tokens.Indices).all().item<bool>());
        Assert.Equal(1.0, embedding.norm(1).mean().item<float>(), 5);
        Assert.Equal([2L, 24], embedding.shape);
    }

    [Fact]
    public void TrainingForward_Backward_ReachesEveryTrainableParameter()
    {
        using var model = UniTokTestModels.LoadFixtureTiny();
        model.train();
        using var images = rand(2, 3, 48, 48) * 2 - 1;
        using var text = tensor(WinTok.Text.ClipTokenizer.Shared.Tokenize(["a cat", "a dog"], 32), [2, 32], int64);

        using var output = model.Forward(images, 2, text);
        using var logits = output.LogitScale * output.ClipImageFeatures.matmul(output.ClipTextFeatures!.t());
        using var loss = (output.ImgRec - images).square().mean() + output.VqLoss + nn.functional.cross_entropy(logits, arange(2));
        loss.backward();

        var withoutGradient = model.named_parameters()
            .Where(p => p.parameter.requires_grad && (p.parameter.grad is null || p.parameter.grad.abs().sum().item<float>() == 0))
            .Select(p => p.name).ToList();
        Assert.Empty(withoutGradient);
        Assert.False(model.named_parameters().Single(p => p.name == "encoder.pos_embed").parameter.requires_grad);
    }

    [Fact]
    public void Bfloat16Stacks_OnTheFixtureModel_AgreeWithFloat32OnMostTokens()
    {
        using var fp32 = UniTokTestModels.LoadFixtureTiny();
        using var bf16 = UniTokTestModels.LoadFixtureTiny().PrepareForInference(ScalarType.BFloat16);
        manual_seed(3);
        using var images = rand(16, 3, 48, 48) * 2 - 1;
        using var noGrad = no_grad();

        using var expected = fp32.ImageToIndices(images);
        using var actual = bf16.ImageToIndices(images);
        using var recon = bf16.IndicesToImage(actual);

        var agreement = actual.eq(expected).to(float32).mean().item<float>();
        Assert.True(agreement >= 0.9, $"bf16 agrees with fp32 on {agreement:P1} of the codes");
        Assert.Equal(ScalarType.Float32, recon.dtype);
    }

    [Fact]
    public void Load_WhenATensorIsMissingAndAnotherMisshaped_FailsNamingBoth()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        var path = folder.File("broken.safetensors");
        var (tensors, _) = Safetensors.Read(TestFixtures.File("unitok", "tiny.weights.safetensors"));
        tensors.Remove("decoder.up_conv4.conv2.weight", out var removed);
        removed!.Dispose();
        tensors["quant_proj.attn.qkv.weight"] = zeros(96, 64);
        using (var checkpoint = CheckpointFile.Read(UniTokTestModels.TinyPth))
            CheckpointFile.Write(path, checkpoint.Args, tensors);

        var error = Assert.Throws<CheckpointMismatchException>(() => UniTokCheckpoint.Load(path, UniTokTestModels.TinyShape));

        Assert.Contains("decoder.up_conv4.conv2.weight", error.Message);
        Assert.Contains("quant_proj.attn.qkv.weight: module expects [192, 64], checkpoint has [96, 64]", error.Message);
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    [Fact]
    public void LoadTextTower_FromAFileWithoutOne_FailsNamingTheFile()
    {
        using var folder = CheckpointTestFiles.NewTempFolder();
        var path = folder.File("no-text.safetensors");
        var (tensors, _) = Safetensors.Read(TestFixtures.File("unitok", "tiny.weights.safetensors"));
        var kept = tensors.Where(p => !p.Key.StartsWith("text_encoder.", StringComparison.Ordinal)).ToDictionary();
        using (var checkpoint = CheckpointFile.Read(UniTokTestModels.TinyPth))
            CheckpointFile.Write(path, checkpoint.Args, kept);

        var error = Assert.Throws<CheckpointFormatException>(() => UniTokCheckpoint.LoadTextTower(path, UniTokTestModels.TinyShape));

        Assert.Contains("no-text.safetensors", error.Message);
        Assert.Contains("text_encoder.", error.Problem);
        foreach (var tensor in tensors.Values) tensor.Dispose();
    }

    [Fact]
    public void MakeDivisible_RoundsAsTimm()
    {
        Assert.Equal(640, MbConvLNBlock.MakeDivisible(160 * 4.0));
        Assert.Equal(32, MbConvLNBlock.MakeDivisible(8 * 4.0));
        Assert.Equal(16, MbConvLNBlock.MakeDivisible(13.0)); // 13 -> 16 (nearest multiple of 8)
        Assert.Equal(8, MbConvLNBlock.MakeDivisible(3.0));   // never below the divisor
    }
}
