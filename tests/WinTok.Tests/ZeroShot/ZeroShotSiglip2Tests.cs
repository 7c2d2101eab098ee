using WinTok.Checkpoints;
using WinTok.Evaluation.ZeroShot;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Tests.ZeroShot;

/// <summary>
/// The real SigLIP2 text tower and Gemma tokenizer against the reference, on data made by
/// tests/fixtures/zeroshot-siglip2/generate.py (see its README). Runs only where <c>WINTOK_SIGLIP2_MODEL</c> and
/// <c>WINTOK_ZEROSHOT_SIGLIP2_FIXTURES</c> are set; the whole-classifier check needs CUDA.
/// </summary>
public sealed class ZeroShotSiglip2Tests
{
    private static readonly string? ModelFolder = Environment.GetEnvironmentVariable("WINTOK_SIGLIP2_MODEL");
    private static readonly string? FixtureFolder = Environment.GetEnvironmentVariable("WINTOK_ZEROSHOT_SIGLIP2_FIXTURES");

    [Fact]
    public void ZeroShotParity_Siglip2TokenIdsOfAll80000Prompts_EqualTheReferenceExactly()
    {
        var io = ReadFixture();
        using var tower = SiglipTextTower.Load(ModelFolder!);
        var prompts = ZeroShotProtocol.WinTokImageNet.Prompts(0, 1000);
        var lengths = io["token_lengths"].data<int>().ToArray();
        var flat = io["token_ids_flat"].data<int>().ToArray();
        using var ids = tower.Tokenize(prompts);
        var actual = ids.data<long>().ToArray();

        int mismatches = 0;
        var examples = new List<string>();
        for (int i = 0, offset = 0; i < prompts.Count; offset += lengths[i], i++)
        {
            var row = actual.AsSpan(i * SiglipTextTower.ContextLength, SiglipTextTower.ContextLength).ToArray();
            var expected = flat.AsSpan(offset, lengths[i]).ToArray().Select(id => (long)id)
                .Concat(Enumerable.Repeat(0L, SiglipTextTower.ContextLength - lengths[i])); // Gemma's <pad> is id 0
            if (row.SequenceEqual(expected)) continue;
            if (mismatches++ < 5) examples.Add($"'{prompts[i]}': [{string.Join(", ", row)}] vs reference [{string.Join(", ", expected)}]");
        }
        Assert.True(mismatches == 0, $"{mismatches} of {prompts.Count} prompts differ:\n" + string.Join("\n", examples));
    }

    [Fact]
    public void ZeroShotParity_Siglip2PoolerOutputsOfTheFirstPrompts_AreWithin1e4()
    {
        var io = ReadFixture();
        using var tower = SiglipTextTower.Load(ModelFolder!);
        using var pooled = tower.EncodeTexts(ZeroShotProtocol.WinTokImageNet.Prompts(0, 1).Take(16).ToArray());

        var error = ZeroShotFixture.MaxAbsError(io["prompt_pooler_output"][..16], pooled, "pooler_output");
        Assert.True(error <= 1e-4f, $"pooler_output: max abs error {error:E3}");
    }

    [Fact]
    [Trait("Category", "GPU")]
    public void ZeroShotParity_Siglip2ImageNetClassifierOnCuda_IsWithin1e4()
    {
        var io = ReadFixture();
        Assert.True(cuda.is_available(), "this GPU test was selected on a machine without CUDA");
        using var tower = SiglipTextTower.Load(ModelFolder!);
        tower.PrepareForInference(CUDA);
        using var classifier = ZeroShotClassifier.Build(tower, ZeroShotProtocol.WinTokImageNet);

        var error = ZeroShotFixture.MaxAbsError(io["class_embeddings"], classifier.Weights, "class_embeddings");
        Assert.True(error <= 1e-4f, $"class_embeddings: max abs error {error:E3}");
    }

    private static Dictionary<string, Tensor> ReadFixture()
    {
        Assert.SkipWhen(ModelFolder is null || FixtureFolder is null,
            "WINTOK_SIGLIP2_MODEL and WINTOK_ZEROSHOT_SIGLIP2_FIXTURES are not set (tests/fixtures/zeroshot-siglip2/README.md)");
        return Safetensors.Read(Path.Combine(FixtureFolder!, "zeroshot-siglip2.safetensors")).Tensors;
    }
}
