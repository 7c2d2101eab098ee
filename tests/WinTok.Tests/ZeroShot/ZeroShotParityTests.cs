using WinTok.Evaluation.ZeroShot;
using WinTok.Model;
using static TorchSharp.torch;

namespace WinTok.Tests.ZeroShot;

/// <summary>
/// WinTok's zero-shot classification against the reference's own numbers (tests/fixtures/zeroshot): tokenizer ids and
/// top-k exactly, floats within 1e-5 absolute (1e-4 for the logits, which are scaled by 100). fp32 on the CPU gives
/// 0 for the pooler outputs, ~6e-8 for the class embeddings, ~5e-7 for the image features and ~1e-5 for the logits.
/// Each test writes the max error it saw to the test output.
/// </summary>
public sealed class ZeroShotParityTests(ITestOutputHelper output)
{
    private const float Tolerance = 1e-5f;
    private const float LogitTolerance = 1e-4f;

    private static ZeroShotFixture Fixture => ZeroShotFixture.Get();

    /// <summary>The fixture's 10 classes x 80 templates under WinTok's protocol.</summary>
    private static ZeroShotProtocol FixtureProtocol =>
        ZeroShotProtocol.WinTokImageNet with { ClassNames = ZeroShotProtocol.WinTokImageNet.ClassNames.Take(10).ToArray() };

    public static TheoryData<string> TokenizerFolders() => new("tokenizer", "tokenizer_source");

    [Fact]
    public void ZeroShotParity_ShippedClassNamesAndTemplates_StartWithTheFixtures()
    {
        Assert.Equal(1000, ImageNetZeroShotData.ClassNames.Count);
        Assert.Equal(80, ImageNetZeroShotData.Templates.Count);
        Assert.Equal(Fixture.ClassNames, ImageNetZeroShotData.ClassNames.Take(10));
        Assert.Equal(Fixture.Templates, ImageNetZeroShotData.Templates);
    }

    [Fact]
    public void ZeroShotParity_Prompts_AreTheReferencesInItsOrder()
    {
        Assert.Equal(Fixture.Prompts, FixtureProtocol.Prompts(0, 10));
    }

    [Theory]
    [MemberData(nameof(TokenizerFolders))]
    public void ZeroShotParity_TokenIdsOf800Prompts_EqualTheReferenceExactly(string folder)
    {
        using var tower = SiglipTextTower.Load(Fixture.TextModelFolder, Fixture.TokenizerFolder(folder));
        using var ids = tower.Tokenize(Fixture.Prompts);
        AssertSameIds(Fixture.Io["token_ids"], ids, Fixture.Prompts);
    }

    [Theory]
    [MemberData(nameof(TokenizerFolders))]
    public void ZeroShotParity_TokenIdsOfExtraTexts_EqualTheReferenceExactly(string folder)
    {
        using var tower = SiglipTextTower.Load(Fixture.TextModelFolder, Fixture.TokenizerFolder(folder));
        using var ids = tower.Tokenize(Fixture.ExtraTexts);
        AssertSameIds(Fixture.Io["extra_token_ids"], ids, Fixture.ExtraTexts);
    }

    [Fact]
    public void ZeroShotParity_PoolerOutputsOfReferenceIds_AreWithin1e5()
    {
        using var pooled = Fixture.Tower.Forward(Fixture.Io["token_ids"]);
        AssertClose(Fixture.Io["prompt_pooler_output"], pooled, "prompt_pooler_output (from the reference's ids)");
    }

    [Fact]
    public void ZeroShotParity_TextEmbeddingsOfPrompts_AreWithin1e5()
    {
        using var embedded = Fixture.Tower.EncodeTexts(Fixture.Prompts);
        AssertClose(Fixture.Io["prompt_pooler_output"], embedded, "prompt_pooler_output (from the prompts)");
    }

    [Fact]
    public void ZeroShotParity_ClassEmbeddings_AreWithin1e5()
    {
        using var classifier = ZeroShotClassifier.Build(Fixture.Tower, FixtureProtocol);
        AssertClose(Fixture.Io["class_embeddings"], classifier.Weights, "class_embeddings");
    }

    [Fact]
    public void ZeroShotParity_TinyWinTokImageFeatures_AreWithin1e5()
    {
        using var model = ZeroShotFixture.LoadTinyWinTok();
        using var noGrad = no_grad();
        var input = Fixture.Io["image_input"];
        using var encoded = model.Encode(input);
        AssertClose(Fixture.Io["image_pooler_out"], encoded.PoolerOut, "image_pooler_out");
        using var features = model.EncodeImage(input);
        AssertClose(Fixture.Io["image_features"], features, "image_features");
    }

    [Fact]
    public void ZeroShotParity_LogitsTopKAndCounts_MatchTheReference()
    {
        using var model = ZeroShotFixture.LoadTinyWinTok();
        using var classifier = ZeroShotClassifier.Build(Fixture.Tower, FixtureProtocol);
        using var noGrad = no_grad();
        using var features = model.EncodeImage(Fixture.Io["image_input"]);

        using var logits = classifier.Logits(features);
        AssertClose(Fixture.Io["logits"], logits, "logits", LogitTolerance);
        using var top5 = classifier.TopK(features);
        Assert.Equal(Fixture.Io["top5"].data<long>().ToArray(), top5.data<long>().ToArray());

        var counts = classifier.Score(features, Fixture.Io["targets"]);
        Assert.Equal(Fixture.Io["top1_correct"].item<long>(), counts.Top1);
        Assert.Equal(Fixture.Io["top5_correct"].item<long>(), counts.Top5);
        Assert.Equal(10, counts.Total);
    }

    private static void AssertSameIds(Tensor expected, Tensor actual, IReadOnlyList<string> texts)
    {
        Assert.Equal(expected.shape, actual.shape);
        var e = expected.data<long>().ToArray();
        var a = actual.data<long>().ToArray();
        int width = (int)expected.shape[1];
        var wrong = Enumerable.Range(0, texts.Count)
            .Where(i => !e.AsSpan(i * width, width).SequenceEqual(a.AsSpan(i * width, width)))
            .Select(i => $"'{texts[i]}': [{string.Join(", ", a.Skip(i * width).Take(width))}] vs reference [{string.Join(", ", e.Skip(i * width).Take(width))}]")
            .ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count} of {texts.Count} texts differ:\n" + string.Join("\n", wrong.Take(5)));
    }

    private void AssertClose(Tensor expected, Tensor actual, string name, float tolerance = Tolerance)
    {
        var error = ZeroShotFixture.MaxAbsError(expected, actual, name);
        output.WriteLine($"{name}: max abs error {error:E3}");
        Assert.True(error <= tolerance, $"{name}: max abs error {error:E3} exceeds {tolerance:E0}");
    }
}
