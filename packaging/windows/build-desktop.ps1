# Build the WaferDesk desktop bundle and installer on Windows (x64, PowerShell 5+):
#
#   powershell -ExecutionPolicy Bypass -File packaging\windows\build-desktop.ps1 [-Variant cpu|gpu]
#
# The same steps as packaging/build-desktop.sh on Linux: a build environment of its own
# (build\venv-<variant>-win: '.[desktop]' or '.[desktop-gpu]' + PyInstaller), the same spec
# (packaging\waferdesk.spec), the same bundle check, then a .zip of the folder and, when Inno Setup 6
# is installed, the installer (packaging\windows\waferdesk.iss). Ends with the bundle's own self-test.
# Needs: Python 3.11 x64 from python.org (the py launcher), Inno Setup 6.3+ for the installer.
# NOTE: written for Windows and not run on it yet (the project builds on Linux); see docs/packaging.md.
param([ValidateSet("cpu", "gpu")][string]$Variant = "cpu")
$ErrorActionPreference = "Stop"
$Root = (Resolve-Path "$PSScriptRoot\..\..").Path
Set-Location $Root
$PyInstallerVersion = "6.22.3"
$Venv = "build\venv-$Variant-win"
$Work = "build\$Variant-win"
$Py = "$Venv\Scripts\python.exe"
$Extra = if ($Variant -eq "gpu") { "desktop-gpu" } else { "desktop" }
$T0 = Get-Date

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed with exit code $LASTEXITCODE" }
}

if (-not (Test-Path $Py)) {
    Write-Host "== build environment $Venv: '.[$Extra]' pyinstaller==$PyInstallerVersion"
    Invoke-Checked "py" @("-3.11", "-m", "venv", $Venv)
    Invoke-Checked $Py @("-m", "pip", "install", "--upgrade", "pip")
    $Packages = @(".[$Extra]", "pyinstaller==$PyInstallerVersion")
    if ($Variant -eq "gpu") {
        $Pin = (Select-String -Path pyproject.toml -Pattern '"onnxruntime-gpu==([^"]+)"').Matches[0].Groups[1].Value
        $Packages += "onnxruntime-gpu[cuda,cudnn]==$Pin"
    }
    Invoke-Checked $Py (@("-m", "pip", "install") + $Packages)
}
$Version = & $Py -c "import sys; sys.path.insert(0, '.'); import waferdesk; print(waferdesk.__version__)"
$Name = "WaferDesk-$Version-windows-x86_64-$Variant"

Write-Host "== PyInstaller $PyInstallerVersion: $Name"
$env:WAFERDESK_VARIANT = $Variant
Invoke-Checked "$Venv\Scripts\pyinstaller.exe" @("--noconfirm", "--clean", "--log-level", "WARN",
    "--distpath", "$Work\dist", "--workpath", "$Work\work", "packaging\waferdesk.spec")
$Bundle = "$Work\dist\WaferDesk"

Write-Host "== bundle check"
$CheckArgs = @("packaging\check_bundle.py", $Bundle, "--variant", $Variant, "--windows")
if ($Variant -eq "cpu") { $CheckArgs += @("--budget-mb", "450") }
Invoke-Checked $Py $CheckArgs

Write-Host "== self-test of the bundle (offscreen)"
$env:QT_QPA_PLATFORM = "offscreen"
$Start = Measure-Command { Invoke-Checked "$Bundle\WaferDesk-cli.exe" @("--self-test", "--no-model") }
Remove-Item Env:QT_QPA_PLATFORM
Invoke-Checked "$Bundle\WaferDesk-cli.exe" @("--version")
Write-Host ("start, draw a sample wafer, exit: {0:N2} s (whole self-test, wall clock)" -f $Start.TotalSeconds)

New-Item -ItemType Directory -Force -Path dist | Out-Null
$Zip = "dist\$Name.zip"
if (Test-Path $Zip) { Remove-Item $Zip }
Compress-Archive -Path $Bundle -DestinationPath $Zip
Write-Host "archive: $Zip ($([math]::Round((Get-Item $Zip).Length / 1MB)) MB)"

$Iscc = @("${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe", "$env:ProgramFiles\Inno Setup 6\ISCC.exe") |
    Where-Object { Test-Path $_ } | Select-Object -First 1
if ($Iscc) {
    Invoke-Checked $Iscc @("/DAppVersion=$Version", "/DVariant=$Variant", "packaging\windows\waferdesk.iss")
    Write-Host "installer: dist\$Name-setup.exe"
} else {
    Write-Host "Inno Setup 6 not found: no installer made (the .zip works: unpack, run WaferDesk.exe)"
}
Write-Host ("build time: {0:N0} s" -f ((Get-Date) - $T0).TotalSeconds)
