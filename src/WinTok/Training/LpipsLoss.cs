using WinTok.Evaluation;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// The reference's training LPIPS term (models/modules/lpips.py): the batch mean of <see cref="Lpips"/>'s per-image
/// distances, which is the reference's per-layer batch-and-space mean summed over layers (the same sum, rounded in
/// another order). The network runs in float32 even inside a bf16 <see cref="Model.Autocast"/> region, where the
/// reference's autocast would run its convolutions in bf16: <see cref="Lpips"/>'s layers do not consult the region
/// (a follow-up for bf16 speed at 256 px, not for correctness).
/// </summary>
public sealed class LpipsLoss(Lpips lpips) : IPerceptualLoss
{
    public Tensor Loss(Tensor images, Tensor reconstructions)
    {
        using var scope = NewDisposeScope();
        return lpips.call(images.to(ScalarType.Float32), reconstructions.to(ScalarType.Float32)).mean().MoveToOuterDisposeScope();
    }
}
