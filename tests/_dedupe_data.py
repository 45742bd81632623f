"""Hand-made township registries for the dedupe tests (with a generated population around them)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import fixtures.generate as gm
from reconcile.idnumbers import check_char

COLUMNS = ["编号", "姓名", "性别", "出生日期", "公民身份号码", "户籍地址", "流动状态", "流入地", "乡镇", "登记日期"]


def rid(first17: str) -> str:
    return first17 + check_char(first17)


ZHANG = rid("43102819900307123")            # 张伟, male (3 odd)
OUYANG = rid("43102819851102002")           # 欧阳晓棠, female
TWIN_A = rid("43102819880512001")           # 李明
TWIN_B = rid("43102819880512003")           # 李亮
MAIMAITI = rid("43102819750115001")         # 买买提·艾力, male
WANG = rid("43100219790909002")             # 王芳 (北湖区 number)
ZHAO = rid("43102819921201003")             # 赵磊
CHEN = rid("43102819830602004")             # 陈静

ADDR = "湖南省郴州市安仁县"
HAND = {
    "城关镇": [
        ["H1", "张伟", "男", "1990-03-07", ZHANG, ADDR + "城关镇石岭村3组", "常住", "", "城关镇", "2019-05-01"],
        ["H2", "欧阳晓棠", "女", "1985-11-02", OUYANG, ADDR + "城关镇长塘村", "常住", "", "城关镇", "2015-01-01"],
        ["H3", "欧阳晓棠", "女", "1985.11.02", "", "安仁县城关镇长塘村5组", "常住", "", "城关镇", "2023-08-09"],
        ["H4", "李明", "男", "1988-05-12", TWIN_A, ADDR + "城关镇新华村2组", "常住", "", "城关镇", ""],
        ["H5", "李亮", "男", "1988-05-12", TWIN_B, ADDR + "城关镇新华村2组", "常住", "", "城关镇", ""],
        ["H6", "买买提·艾力", "男", "1975-01-15", MAIMAITI, ADDR + "城关镇石岭村", "流出", "广东东莞", "城关镇", ""],
        ["H7", "赵磊", "男", "1992-12-01", ZHAO, ADDR + "城关镇石岭村1组", "流出", "东莞", "城关镇", ""],
        ["H8", "陈静", "女", "1983-06-02", CHEN, ADDR + "城关镇长塘村", "常住", "", "城关镇", ""],
    ],
    "龙海镇": [
        ["H1", "张伟", "男", "1990-03-07", ZHANG[:6] + ZHANG[8:17], ADDR + "龙海镇白寨村", "常住", "", "龙海镇", "2021-02-03"],
        ["H2", "买买提•艾力", "男", "1975-01-15", MAIMAITI, ADDR + "龙海镇白寨村4组", "常住", "", "龙海镇", ""],
        ["H3", "王芳", "女", "1979-09-09", WANG, ADDR + "龙海镇新塘村", "常住", "", "龙海镇", ""],
    ],
    "外地": [
        ["H1", "王芳", "女", "1979-09-09", WANG, "湖南省郴州市北湖区人民路12号", "常住", "", "", ""],
        ["H2", "赵磊", "男", "1992-12-01", ZHAO, "广东省东莞市长安镇乌沙社区", "常住", "", "", ""],
        ["H3", "陈静", "女", "1983-06-02", CHEN, "湖南省长沙市芙蓉区五一大道8号", "常住", "", "", ""],
    ],
}


def write_files(folder: Path, hand: dict[str, list[list[str]]] = HAND, pad: int = 3000) -> list[Path]:
    """One CSV per file label: the hand rows plus a share of a generated population (GB18030)."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = gm.generate(pad, seed=11).origin.copy() if pad else pd.DataFrame(columns=COLUMNS)
    gen["登记日期"] = ""
    parts = np.array_split(np.arange(len(gen)), len(hand))
    paths = []
    for (label, rows), part in zip(hand.items(), parts):
        df = pd.concat([pd.DataFrame(rows, columns=COLUMNS), gen.iloc[part][COLUMNS]], ignore_index=True)
        p = folder / f"{label}.csv"
        df.to_csv(p, index=False, encoding="gb18030")
        paths.append(p)
    return paths


