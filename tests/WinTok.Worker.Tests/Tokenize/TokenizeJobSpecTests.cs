using WinTok.Data.Corpus;
using WinTok.Jobs.Checkpoints;
using WinTok.Jobs.Tokenize;

namespace WinTok.Worker.Tests.Tokenize;

public sealed class TokenizeJobSpecTests
{
    private static readonly TokenizeJobSpec Spec = new("/data/in", "/data/out",
        new CheckpointReference("/ckpt/wintok.pth", new string('a', 64), 123, "42"), new ModelChoice("wintok"),
        CorpusKind.Folder, 1000, SemanticTokens: false, ImageSize: 256, MaxPixels: 89_478_485, ReducedScaleJpegDecode: false,
        new DateTimeOffset(2026, 11, 29, 12, 0, 0, TimeSpan.Zero), KeepDamagedImages: true);

    [Fact]
    public void FromJson_WhenKeepDamagedImagesWasSet_ReadsItBack() =>
        Assert.Equal(Spec, TokenizeJobSpec.FromJson(Spec.ToJson()));

    [Fact]
    public void FromJson_WhenTheSpecPredatesKeepDamagedImages_ReadsItAsFalse()
    {
        // Jobs submitted before the setting existed have no such member; they keep rejecting damaged images.
        var json = Spec.ToJson().Replace(",\"keepDamagedImages\":true", "", StringComparison.Ordinal);
        Assert.DoesNotContain("keepDamagedImages", json, StringComparison.Ordinal);

        Assert.False(TokenizeJobSpec.FromJson(json).KeepDamagedImages);
    }
}
