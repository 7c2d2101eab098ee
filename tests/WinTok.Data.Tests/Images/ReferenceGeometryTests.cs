using WinTok.Data.Images;

namespace WinTok.Data.Tests.Images;

public sealed class ReferenceGeometryTests
{
    [Theory]
    // 2560x1600 -> 409x256: (409 - 256) / 2 = 76.5 rounds half to even (Python round) to 76.
    [InlineData(2560, 1600, 409, 256, 76, 0)]
    [InlineData(1080, 1920, 256, 455, 0, 100)]
    [InlineData(64, 40, 409, 256, 76, 0)]
    [InlineData(3000, 400, 1920, 256, 832, 0)]
    [InlineData(256, 256, 256, 256, 0, 0)]
    // 500x375 -> int(256 * 500 / 375) = 341; (341 - 256) / 2 = 42.5 -> 42.
    [InlineData(500, 375, 341, 256, 42, 0)]
    public void For_WhenGivenAnImageSize_MatchesTorchvisionResizeAndCenterCrop(
        int width, int height, int resizedWidth, int resizedHeight, int left, int top)
    {
        var geometry = ReferenceGeometry.For(width, height, 256);

        Assert.Equal(new ReferenceGeometry(resizedWidth, resizedHeight, left, top), geometry);
    }

    [Fact]
    public void NearestPositions_WhenRunningSumDiffersFromProduct_FollowsPillowsRunningSum()
    {
        var positions = new int[1536];

        PillowResampler.NearestPositions(2048, 1536, 0, positions);

        var step = 2048.0 / 1536;
        var position = step * 0.5;
        for (var i = 0; i < positions.Length; i++, position += step)
        {
            Assert.Equal((int)position, positions[i]);
        }
    }
}
